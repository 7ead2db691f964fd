"""Writes made from the command line are audited like the API's: the change and its entry in one
transaction, the actor ``cli:<os user>`` (the admin API's are ``tok_…:<name>``)."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
S = TypeVar("S")


class Note(Protocol):
    async def __call__(self, action: str, target: str, before: object = None, after: object = None) -> None: ...


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        user = "unknown"
    return f"cli:{user}"


def audited(store: Callable[[Any], S], change: Callable[[S, Note], Awaitable[T]]) -> T:
    """Run ``change`` on ``store(db)`` against DATABASE_URL in one transaction; what it notes is written
    to the audit log in that transaction, so a change is never without its entry (nor an entry without it)."""
    from hookstream.db import Database
    from hookstream.db.pool import BoundDatabase
    from hookstream.settings import StackSettings
    from hookstream.store import audit

    from hookstream_tools.cli.common import require_migrated

    who = actor()

    async def run() -> T:
        database_url = StackSettings().require_database()
        await require_migrated(database_url)
        async with Database(database_url) as db, db.transaction() as conn:

            async def note(action: str, target: str, before: object = None, after: object = None) -> None:
                await audit.record(conn, who, action, target, _plain(before), _plain(after))

            return await change(store(BoundDatabase(conn)), note)

    return asyncio.run(run())


def _plain(value: object) -> Any:
    """JSON as the audit log keeps it (times as ISO strings)."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def record(action: str, target: str, after: object) -> None:
    """Audit what was done on Kafka (a redrive, a replay): written right after it succeeded, as the admin does."""

    async def note_only(_: None, note: Note) -> None:
        await note(action, target, None, after)

    audited(lambda _db: None, note_only)

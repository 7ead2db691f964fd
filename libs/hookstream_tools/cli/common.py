"""What every command group shares: the consoles, one-line errors, a database that is migrated."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click
from hookstream.errors import ConfigurationError, HookstreamError, UnknownService
from rich.console import Console

T = TypeVar("T")
S = TypeVar("S")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


class Group(click.Group):
    """Turns the errors we raise on purpose into one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HookstreamError as exc:
            fail(str(exc), code=2 if isinstance(exc, UnknownService) else 1)


async def require_migrated(database_url: str) -> None:
    """Commands that read or write tables refuse, in one line, to run against a schema that is behind.

    They use the library's shared tables only (the store), so only the library's migrations count: a
    deployment without, say, fulfillment need not have fulfillment's private tables to use the CLI."""
    from hookstream.db.migrations import LIBRARY, bundled_migrations, pending_migrations

    pending = await pending_migrations(database_url, {LIBRARY: bundled_migrations()})
    if pending:
        raise ConfigurationError(
            f"the database is missing {len(pending)} migration(s) ({', '.join(pending[:2])}…):"
            " run `hookstream db migrate` first"
        )


def with_store(store: Callable[[Any], S], action: Callable[[S], Awaitable[T]]) -> T:
    """Run ``action`` on ``store(db)`` against DATABASE_URL, once it is known to be migrated."""
    from hookstream.db import Database
    from hookstream.settings import StackSettings

    async def run() -> T:
        database_url = StackSettings().require_database()
        await require_migrated(database_url)
        async with Database(database_url) as db:
            return await action(store(db))

    return asyncio.run(run())

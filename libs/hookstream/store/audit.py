"""The audit log: who changed what through the admin API, when, and the record before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hookstream.db import Database


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any
    after: Any


async def record(
    conn: psycopg.AsyncConnection[Any], actor: str, action: str, target: str, before: Any = None, after: Any = None
) -> None:
    """On the caller's connection, so the entry shares the change's transaction."""
    await conn.execute(
        "INSERT INTO audit_log (actor, action, target, before, after) VALUES (%s, %s, %s, %s, %s)",
        (actor, action, target, None if before is None else Jsonb(before), None if after is None else Jsonb(after)),
    )


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def recent(self, *, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT id, at, actor, action, target, before, after FROM audit_log
                   WHERE %s::text IS NULL OR target = %s ORDER BY id DESC LIMIT %s""",
                (target, target, limit),
            )
            return [AuditEntry(**row) for row in await cur.fetchall()]  # type: ignore[arg-type]

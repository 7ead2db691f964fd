"""Orders as the admin and the CLI read them: current state and the timeline of every event.

The normalizer owns the writes (its state machine applies events inside its own transactions);
this is the read side, so nothing else needs the normalizer to see an order. ``order_refs`` (what
external systems call an order) are written by the workflow that got the answer, in the
transaction that records its step (``set_order_ref``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from hookstream.db import Database


@dataclass(frozen=True)
class Order:
    order_id: str
    channel: str
    status: str | None
    sequence: int
    held: int
    snapshot: dict[str, Any]
    tracking: list[Any]
    first_seen_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TimelineEntry:
    event_id: str
    type: str
    occurred_at: datetime
    outcome: str  # applied, held, stale, conflict, ignored
    sequence: int | None
    detail: str | None
    recorded_at: datetime  # when the normalizer last decided on it
    channel: str | None = None  # None for events recorded before migration 0011
    received_at: datetime | None = None  # when the ingress took the webhook


_ORDER = """SELECT order_id, channel, status, sequence, held, snapshot, tracking, first_seen_at, updated_at
              FROM orders"""


class OrderStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, order_id: str) -> Order | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(_ORDER + " WHERE order_id = %s", (order_id,))
            row = await cur.fetchone()
        return Order(**row) if row else None  # type: ignore[arg-type]

    async def recent(self, *, limit: int = 50, status: str | None = None) -> list[Order]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                _ORDER + " WHERE %s::text IS NULL OR status = %s ORDER BY updated_at DESC LIMIT %s",
                (status, status, limit),
            )
            return [Order(**row) for row in await cur.fetchall()]  # type: ignore[arg-type]

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        """Every event of the order, applied ones in their sequence, then the rest, with what became of each."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT event_id, type, occurred_at, outcome, sequence, detail, recorded_at, channel, received_at
                   FROM order_timeline WHERE order_id = %s ORDER BY sequence NULLS LAST, occurred_at""",
                (order_id,),
            )
            return [TimelineEntry(**row) for row in await cur.fetchall()]  # type: ignore[arg-type]

    async def workflow_steps(self, order_id: str) -> list[dict[str, Any]]:
        """Every recorded workflow step for the order's events: service, event, step, result, when."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT s.service, s.event_id, s.step, s.result, s.finished_at FROM workflow_steps s
                   JOIN order_timeline t ON t.event_id = s.event_id WHERE t.order_id = %s
                   ORDER BY s.finished_at""",
                (order_id,),
            )
            return list(await cur.fetchall())


async def set_order_ref(conn: psycopg.AsyncConnection[Any], order_id: str, system: str, ref: str) -> None:
    """Record what ``system`` calls the order, inside the caller's transaction (the workflow that got the answer)."""
    await conn.execute(
        """INSERT INTO order_refs (order_id, system, ref) VALUES (%s, %s, %s)
           ON CONFLICT (order_id, system) DO UPDATE SET ref = excluded.ref, updated_at = now()""",
        (order_id, system, ref),
    )


class OrderRefs:
    """What external systems call each order (``crm``, ``warehouse``, ...)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, order_id: str, system: str) -> str | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT ref FROM order_refs WHERE order_id = %s AND system = %s", (order_id, system)
            )
            row = await cur.fetchone()
        return None if row is None else str(row["ref"])

    async def all(self, order_id: str) -> dict[str, str]:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT system, ref FROM order_refs WHERE order_id = %s", (order_id,))
            return {str(row["system"]): str(row["ref"]) for row in await cur.fetchall()}

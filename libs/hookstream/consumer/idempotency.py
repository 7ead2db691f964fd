"""Idempotent effects: a ``(service, event_id)`` marker in the same transaction as the effect."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg


async def first_time(conn: psycopg.AsyncConnection[Any], service: str, event_id: str) -> bool:
    """Record the marker inside the caller's open transaction; False if the event was already applied.

    Call it first in the effect's transaction: when the effect rolls back, so does the marker,
    and a concurrent duplicate waits on the row until the first one commits or rolls back."""
    cur = await conn.execute(
        "INSERT INTO processed_events (service, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
        (service, event_id),
    )
    return await cur.fetchone() is not None


def idempotency_key(service: str, event_id: str, purpose: str = "") -> str:
    """A stable ``Idempotency-Key`` for an external call made on behalf of one event (≤ 64 chars, as Stripe accepts)."""
    digest = hashlib.sha256(f"{service}\x00{event_id}\x00{purpose}".encode()).hexdigest()
    return f"hs_{digest[:60]}"

"""The delivery log in Postgres: one row per (subscription, event), one per attempt."""

from __future__ import annotations

import hashlib
from typing import Any

from hookstream.db import Database
from hookstream_services.delivery.sender import Attempt

FINAL = ("delivered", "failed", "skipped")


def delivery_id(subscription_id: str, event_id: str) -> str:
    return "dlv_" + hashlib.sha256(f"{subscription_id}\x00{event_id}".encode()).hexdigest()[:24]


def webhook_id(subscription_id: str, event_id: str) -> str:
    """The ``webhook-id`` a partner sees: the same on every retry of this delivery."""
    return "msg_" + hashlib.sha256(f"webhook\x00{subscription_id}\x00{event_id}".encode()).hexdigest()[:24]


class DeliveryLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, rows: list[tuple[str, str, str, str]]) -> None:
        """(subscription_id, event_id, order_id, event_type) rows; existing ones stay as they are."""
        async with self.db.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO deliveries (id, subscription_id, event_id, order_id, event_type, webhook_id)
                   VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (subscription_id, event_id) DO NOTHING""",
                [(delivery_id(s, e), s, e, o, t, webhook_id(s, e)) for s, e, o, t in rows],
            )

    async def status(self, delivery: str) -> str | None:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT status FROM deliveries WHERE id = %s", (delivery,))
            row = await cur.fetchone()
            return None if row is None else str(row["status"])

    async def record(self, delivery: str, attempt: Attempt, status: str) -> None:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """UPDATE deliveries SET attempts = attempts + 1, status = %s, last_error = %s, updated_at = now()
                   WHERE id = %s RETURNING attempts""",
                (status, attempt.error, delivery),
            )
            row = await cur.fetchone()
            await conn.execute(
                """INSERT INTO delivery_attempts
                       (delivery_id, attempt, status_code, latency_ms, response_excerpt, error)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (
                    delivery,
                    row["attempts"] if row else 0,
                    attempt.status_code,
                    attempt.latency_ms,
                    attempt.excerpt,
                    attempt.error,
                ),
            )

    async def mark(self, delivery: str, status: str, error: str | None = None) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                """UPDATE deliveries SET status = %s, last_error = coalesce(%s, last_error), updated_at = now()
                   WHERE id = %s""",
                (status, error, delivery),
            )

    async def attempts(self, delivery: str) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM delivery_attempts WHERE delivery_id = %s ORDER BY attempted_at", (delivery,)
            )
            return list(await cur.fetchall())

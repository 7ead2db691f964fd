"""The delivery log in Postgres: one row per (subscription, event), one per attempt."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from hookstream.db import Database
from hookstream.kafka.headers import encode_headers
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

    async def create(
        self, rows: list[tuple[str, str, str, str]], value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """(subscription_id, event_id, order_id, event_type) rows of one record; existing ones stay as they are."""
        encoded = encode_headers(headers)
        async with self.db.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO deliveries
                       (id, subscription_id, event_id, order_id, event_type, webhook_id, value, headers)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (subscription_id, event_id) DO NOTHING""",
                [(delivery_id(s, e), s, e, o, t, webhook_id(s, e), value, encoded) for s, e, o, t in rows],
            )

    async def for_retry(
        self, *, delivery: str | None = None, subscription_id: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """One delivery (any state but delivered), or every failed one of an endpoint since a time, oldest first."""
        async with self.db.connection() as conn:
            if delivery is not None:
                cur = await conn.execute(
                    """SELECT id, subscription_id, order_id, status, value, headers FROM deliveries
                       WHERE id = %s""",
                    (delivery,),
                )
            else:
                cur = await conn.execute(
                    """SELECT id, subscription_id, order_id, status, value, headers FROM deliveries
                       WHERE subscription_id = %s AND status = 'failed' AND created_at >= %s
                       ORDER BY created_at, id""",
                    (subscription_id, since),
                )
            return list(await cur.fetchall())

    async def expire(self, older_than: timedelta) -> int:
        """Delete settled deliveries and their attempts past the retention; return how many deliveries went."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """DELETE FROM deliveries WHERE status IN ('delivered', 'failed', 'skipped')
                   AND updated_at < now() - %s""",
                (older_than,),
            )
            return cur.rowcount

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

"""Which endpoints have an open circuit breaker, on which delivery instances (``endpoint_circuits``).

The breaker itself is per instance and in memory (the hot path never waits on this table); an
instance writes only when a circuit opens, a probe fails (which keeps the row fresh), or it closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from hookstream.db import Database


@dataclass(frozen=True)
class OpenCircuit:
    subscription_id: str
    instances: int  # delivery instances whose breaker for this endpoint is open
    since: datetime  # the earliest of them opened then


class CircuitLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def opened(self, subscription_id: str, instance: str, *, trusted_for_s: float) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                """INSERT INTO endpoint_circuits (subscription_id, instance, expires_at)
                   VALUES (%s, %s, now() + make_interval(secs => %s))
                   ON CONFLICT (subscription_id, instance) DO UPDATE SET expires_at = excluded.expires_at""",
                (subscription_id, instance, trusted_for_s),
            )

    async def closed(self, subscription_id: str, instance: str) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM endpoint_circuits WHERE subscription_id = %s AND instance = %s",
                (subscription_id, instance),
            )

    async def open_now(self) -> dict[str, OpenCircuit]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT subscription_id, count(*) AS instances, min(opened_at) AS since FROM endpoint_circuits
                   WHERE expires_at > now() GROUP BY subscription_id"""
            )
            rows = cast(list[dict[str, Any]], await cur.fetchall())
        return {r["subscription_id"]: OpenCircuit(**r) for r in rows}

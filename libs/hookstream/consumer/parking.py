"""The durable parked-keys record that keeps one order's events in order across retries.

A key is *blocked* by the event that went to a retry tier. Later events of the key are
*parked* behind it. When the blocker succeeds or is dead-lettered, the parked events are
released one by one, oldest first; the key is unblocked only once none is left. Parking and
unblocking take the key's row lock, so an event arriving during release queues behind the
others instead of overtaking them, whichever instance handles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

import psycopg

from hookstream.consumer.records import Record
from hookstream.db import Database
from hookstream.kafka.headers import decode_headers, encode_headers


@dataclass(frozen=True)
class Parked:
    seq: int
    record: Record


class NotTheBlocker:
    """``next_released`` was asked by an event that no longer blocks the key (a duplicate retry)."""


class IsTheBlocker:
    """``park_if_blocked`` was given the blocking event itself, delivered again (after a crash or a duplicate)."""


NOT_THE_BLOCKER = NotTheBlocker()
IS_THE_BLOCKER = IsTheBlocker()


class ParkedKeys(Protocol):
    async def blocked_keys(self, topic: str, partitions: list[int]) -> set[str]: ...

    async def park_if_blocked(self, key: str, record: Record) -> bool | IsTheBlocker: ...

    async def block(self, key: str, record: Record) -> None: ...

    async def next_released(self, key: str, blocker_event_id: str) -> Parked | NotTheBlocker | None: ...

    async def reblock(self, key: str, parked: Parked) -> None: ...

    async def unpark(self, key: str, parked: Parked) -> None: ...


class PostgresParkedKeys:
    def __init__(self, db: Database, service: str) -> None:
        self.db = db
        self.service = service

    async def blocked_keys(self, topic: str, partitions: list[int]) -> set[str]:
        async with self.db.connection() as conn:
            rows = await conn.execute(
                "SELECT key FROM parked_keys WHERE service = %s AND topic = %s AND partition = ANY(%s)",
                (self.service, topic, partitions),
            )
            return {str(row["key"]) for row in await rows.fetchall()}

    async def _lock(self, conn: psycopg.AsyncConnection[Any], key: str) -> dict[str, Any] | None:
        """The key's parked_keys row, locked until the transaction ends; None if the key is free."""
        cur = await conn.execute(
            "SELECT blocker_event_id FROM parked_keys WHERE service = %s AND key = %s FOR UPDATE",
            (self.service, key),
        )
        return cast("dict[str, Any] | None", await cur.fetchone())

    async def park_if_blocked(self, key: str, record: Record) -> bool | IsTheBlocker:
        """Park ``record`` if its key is blocked; False if the key is free."""
        async with self.db.transaction() as conn:
            row = await self._lock(conn, key)
            if row is None:
                return False
            if row["blocker_event_id"] == record.event_id:
                return IS_THE_BLOCKER
            await conn.execute(
                """INSERT INTO parked_records (service, key, topic, partition, "offset", event_id, value,
                       headers, timestamp_ms)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (service, topic, partition, "offset") DO NOTHING""",
                (
                    self.service,
                    key,
                    record.topic,
                    record.partition,
                    record.offset,
                    record.event_id,
                    record.value,
                    encode_headers(record.headers),
                    record.timestamp_ms,
                ),
            )
            return True

    async def block(self, key: str, record: Record) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                """INSERT INTO parked_keys (service, key, topic, partition, blocker_event_id)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT (service, key) DO NOTHING""",
                (self.service, key, record.topic, record.partition, record.event_id),
            )

    async def next_released(self, key: str, blocker_event_id: str) -> Parked | NotTheBlocker | None:
        """The oldest event parked behind ``blocker_event_id``; None once none is left (the key is unblocked)."""
        async with self.db.transaction() as conn:
            row = await self._lock(conn, key)
            if row is None:
                return NOT_THE_BLOCKER
            if row["blocker_event_id"] != blocker_event_id:
                # Still parked means the blocker named by `reblock` never reached its retry tier
                # (the process died in between): whoever releases resumes with it.
                cur = await conn.execute(
                    "SELECT 1 FROM parked_records WHERE service = %s AND key = %s AND event_id = %s LIMIT 1",
                    (self.service, key, row["blocker_event_id"]),
                )
                if await cur.fetchone() is None:
                    return NOT_THE_BLOCKER
            cur = await conn.execute(
                """SELECT seq, topic, partition, "offset", value, headers, timestamp_ms
                   FROM parked_records WHERE service = %s AND key = %s ORDER BY seq LIMIT 1""",
                (self.service, key),
            )
            parked = cast("dict[str, Any] | None", await cur.fetchone())
            if parked is None:
                await conn.execute("DELETE FROM parked_keys WHERE service = %s AND key = %s", (self.service, key))
                return None
            record = Record(
                topic=str(parked["topic"]),
                partition=int(parked["partition"]),
                offset=int(parked["offset"]),
                key=key,
                value=bytes(parked["value"]) if parked["value"] is not None else None,
                headers=decode_headers(parked["headers"]),
                timestamp_ms=int(parked["timestamp_ms"]),
            )
            return Parked(int(parked["seq"]), record)

    async def reblock(self, key: str, parked: Parked) -> None:
        """A released event failed and is about to go to a retry tier: it blocks the key from now on.
        It stays parked until it is in the tier (then ``unpark``), so a crash in between loses nothing."""
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE parked_keys SET blocker_event_id = %s WHERE service = %s AND key = %s",
                (parked.record.event_id, self.service, key),
            )

    async def unpark(self, key: str, parked: Parked) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                "DELETE FROM parked_records WHERE service = %s AND key = %s AND seq = %s",
                (self.service, key, parked.seq),
            )

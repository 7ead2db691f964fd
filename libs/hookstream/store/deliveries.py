"""The delivery log in Postgres: one row per (subscription, event), one per attempt.

Written by the delivery service, read by the CLI and the admin; ``resend`` queues deliveries
again (``hookstream deliveries retry|recover`` and the admin's buttons).

The hot paths (creating deliveries, reading their status before a send, recording an attempt)
go through group commit: concurrent callers share one statement, so a thousand deliveries in
flight cost a few round trips per batch rather than several each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from hookstream_schemas import topics

from hookstream.db import Database
from hookstream.db.group_commit import GroupCommit
from hookstream.errors import ConfigurationError
from hookstream.kafka import Producer
from hookstream.kafka.headers import decode_headers, encode_headers

SUBSCRIPTION = "hookstream-subscription-id"  # headers of a deliveries.v1 record
DELIVERY = "hookstream-delivery-id"
# On a record fan-out hands over after its own first attempt failed: "retry[:<retry-after ms>]" or
# "rejected:<reason>"; the sending side then schedules the retry (or dead-letters) without sending again.
ATTEMPTED = "hookstream-delivery-attempted"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # the endpoint was disabled while the delivery waited


FINAL = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED})


@dataclass(frozen=True)
class AttemptRecord:
    """What the log keeps of one HTTP attempt."""

    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None


def delivery_id(subscription_id: str, event_id: str) -> str:
    return "dlv_" + hashlib.sha256(f"{subscription_id}\x00{event_id}".encode()).hexdigest()[:24]


def webhook_id(subscription_id: str, event_id: str) -> str:
    """The ``webhook-id`` a partner sees: the same on every retry of this delivery."""
    return "msg_" + hashlib.sha256(f"webhook\x00{subscription_id}\x00{event_id}".encode()).hexdigest()[:24]


_LISTED = """SELECT id, subscription_id, event_id, order_id, event_type, webhook_id, status, attempts, last_error,
                     created_at, updated_at FROM deliveries"""
_NewRows = tuple[list[tuple[str, str, str, str]], bytes, str]
_UNFINISHED = [str(DeliveryStatus.PENDING), str(DeliveryStatus.RETRYING)]
_Record = tuple[str, AttemptRecord, DeliveryStatus]


class DeliveryLog:
    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self.db = db
        self._creates: GroupCommit[_NewRows, set[str]] = GroupCommit(self._create_batch, max_batch=max_batch)
        self._reads: GroupCommit[str, DeliveryStatus | None] = GroupCommit(self._status_batch, max_batch=max_batch)
        self._records: GroupCommit[_Record, None] = GroupCommit(self._record_batch, max_batch=max_batch)

    async def create(
        self, rows: list[tuple[str, str, str, str]], value: bytes, headers: list[tuple[str, bytes]]
    ) -> set[str]:
        """(subscription_id, event_id, order_id, event_type) rows of one record; existing ones stay as they are.

        Returns the subscriptions that may be sent this event right away: its delivery is new (not
        a redelivery) and nothing earlier for the same (subscription, order) is still pending or
        retrying, so sending now keeps FIFO per (endpoint, order)."""
        return await self._creates.submit((rows, value, encode_headers(headers)))

    async def _create_batch(self, items: list[_NewRows]) -> list[set[str]]:
        rows = [
            (delivery_id(s, e), s, e, o, t, webhook_id(s, e), value, headers)
            for new, value, headers in items
            for s, e, o, t in new
        ]
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * 8
        async with self.db.connection() as conn:
            # The outer query's snapshot does not see the rows the CTE inserts: "unfinished" means earlier ones.
            cur = await conn.execute(
                """WITH new AS (
                       INSERT INTO deliveries
                           (id, subscription_id, event_id, order_id, event_type, webhook_id, value, headers)
                       SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                                            %s::bytea[], %s::text[])
                       ON CONFLICT (subscription_id, event_id) DO NOTHING
                       RETURNING id, subscription_id, order_id)
                   SELECT n.id FROM new n WHERE NOT EXISTS (
                       SELECT 1 FROM deliveries d WHERE d.subscription_id = n.subscription_id
                       AND d.order_id = n.order_id AND d.status = ANY(%s))""",
                [*columns, _UNFINISHED],
            )
            clear = {row["id"] for row in await cur.fetchall()}
        results: list[set[str]] = []
        seen: set[tuple[str, str]] = set()  # two events of one (subscription, order) in a batch: the first at most
        for new, _, _ in items:
            ready = set()
            for s, e, o, _ in new:
                if delivery_id(s, e) in clear and (s, o) not in seen:
                    ready.add(s)
                seen.add((s, o))
            results.append(ready)
        return results

    async def for_retry(
        self,
        *,
        delivery: str | None = None,
        subscription_id: str | None = None,
        since: datetime | None = None,
        include_skipped: bool = False,
    ) -> list[dict[str, Any]]:
        """One delivery (any state but delivered), or every failed (and, asked, skipped) one of an endpoint
        since a time, oldest first."""
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
                       WHERE subscription_id = %s AND status = ANY(%s) AND created_at >= %s
                       ORDER BY created_at, id""",
                    (
                        subscription_id,
                        [str(DeliveryStatus.FAILED)] + ([str(DeliveryStatus.SKIPPED)] if include_skipped else []),
                        since,
                    ),
                )
            return list(await cur.fetchall())

    async def expire(self, older_than: timedelta) -> int:
        """Delete settled deliveries and their attempts past the retention; return how many deliveries went."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM deliveries WHERE status = ANY(%s) AND updated_at < now() - %s",
                ([str(status) for status in FINAL], older_than),
            )
            return cur.rowcount

    async def status(self, delivery: str) -> DeliveryStatus | None:
        return await self._reads.submit(delivery)

    async def _status_batch(self, ids: list[str]) -> list[DeliveryStatus | None]:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT id, status FROM deliveries WHERE id = ANY(%s)", (ids,))
            found = {row["id"]: DeliveryStatus(str(row["status"])) for row in await cur.fetchall()}
        return [found.get(i) for i in ids]

    async def record(self, delivery: str, attempt: AttemptRecord, status: DeliveryStatus) -> None:
        """Count the attempt, set the delivery's status, and keep the attempt in the log: one statement."""
        await self._records.submit((delivery, attempt, status))

    async def _record_batch(self, items: list[_Record]) -> list[None]:
        # One delivery is attempted by one worker at a time, but a manual retry can overlap its own
        # retry: a delivery seen twice goes in a later round, so each attempt gets its own number.
        # One transaction: if the batch fails, group commit retries its items one by one, and none
        # of them may have been counted already.
        async with self.db.transaction() as conn:
            for batch in _unique_rounds(items):
                await conn.execute(
                    """WITH v AS (
                           SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::text[], %s::text[])
                               AS v(id, status, status_code, latency_ms, excerpt, error)),
                       u AS (
                           UPDATE deliveries d SET attempts = d.attempts + 1, status = v.status,
                                  last_error = v.error, updated_at = now()
                           FROM v WHERE d.id = v.id RETURNING d.id, d.attempts)
                       INSERT INTO delivery_attempts
                           (delivery_id, attempt, status_code, latency_ms, response_excerpt, error)
                       SELECT v.id, u.attempts, v.status_code, v.latency_ms, v.excerpt, v.error
                       FROM v JOIN u ON u.id = v.id""",
                    [
                        [d for d, _, _ in batch],
                        [str(s) for _, _, s in batch],
                        [a.status_code for _, a, _ in batch],
                        [a.latency_ms for _, a, _ in batch],
                        [a.excerpt for _, a, _ in batch],
                        [a.error for _, a, _ in batch],
                    ],
                )
        return [None] * len(items)

    async def mark(self, delivery: str, status: DeliveryStatus, error: str | None = None) -> None:
        async with self.db.connection() as conn:
            await conn.execute(
                """UPDATE deliveries SET status = %s, last_error = coalesce(%s, last_error), updated_at = now()
                   WHERE id = %s""",
                (str(status), error, delivery),
            )

    async def search(
        self,
        *,
        subscription_id: str | None = None,
        order_id: str | None = None,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Deliveries newest first, each filter optional (the admin's list)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                _LISTED
                + """ WHERE (%(sub)s::text IS NULL OR subscription_id = %(sub)s)
                      AND (%(order)s::text IS NULL OR order_id = %(order)s)
                      AND (%(status)s::text IS NULL OR status = %(status)s)
                      AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
                      AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
                    ORDER BY created_at DESC, id LIMIT %(limit)s""",
                {
                    "sub": subscription_id,
                    "order": order_id,
                    "status": None if status is None else str(status),
                    "since": since,
                    "until": until,
                    "limit": limit,
                },
            )
            return list(await cur.fetchall())

    async def get(self, delivery: str) -> dict[str, Any] | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(_LISTED + " WHERE id = %s", (delivery,))
            return await cur.fetchone()

    async def attempts(self, delivery: str) -> list[dict[str, Any]]:
        return (await self.attempts_of([delivery])).get(delivery, [])

    async def attempts_of(self, deliveries: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every attempt of each delivery, oldest first, in one statement."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM delivery_attempts WHERE delivery_id = ANY(%s) ORDER BY attempted_at", (deliveries,)
            )
            found: dict[str, list[dict[str, Any]]] = {}
            for row in await cur.fetchall():
                found.setdefault(str(row["delivery_id"]), []).append(row)
            return found


def _unique_rounds(items: list[_Record]) -> list[list[_Record]]:
    rounds: list[list[_Record]] = []
    seen: list[set[str]] = []
    for item in items:
        n = next((i for i, ids in enumerate(seen) if item[0] not in ids), len(seen))
        if n == len(seen):
            rounds.append([])
            seen.append(set())
        rounds[n].append(item)
        seen[n].add(item[0])
    return rounds


async def resend(
    db: Database,
    producer: Producer,
    *,
    delivery: str | None = None,
    subscription_id: str | None = None,
    since: datetime | None = None,
    include_skipped: bool = False,
    topic: str = topics.DELIVERIES.name,
    on_progress: Callable[[dict[str, Any]], None] = lambda row: None,
) -> int:
    """Mark the deliveries pending and queue them on ``deliveries.v1`` (same key: order kept); return the count."""
    log = DeliveryLog(db)
    rows = await log.for_retry(
        delivery=delivery, subscription_id=subscription_id, since=since, include_skipped=include_skipped
    )
    if delivery is not None and not rows:
        raise ConfigurationError(f"no delivery {delivery!r}")
    if delivery is not None and rows[0]["status"] == DeliveryStatus.DELIVERED:
        raise ConfigurationError(f"{delivery} was delivered already; nothing to retry")
    for row in rows:
        # Pending before the record is queued, so the delivery service's answer to it is not overwritten;
        # back to what it was if it cannot be queued, so it does not sit "pending" with nothing on the way.
        await log.mark(row["id"], DeliveryStatus.PENDING)
        headers = [
            *decode_headers(row["headers"]),
            (SUBSCRIPTION, str(row["subscription_id"]).encode()),
            (DELIVERY, str(row["id"]).encode()),
        ]
        try:
            await producer.send(
                topic, bytes(row["value"]), key=f"{row['subscription_id']}:{row['order_id']}", headers=headers
            )
        except BaseException:
            await log.mark(row["id"], DeliveryStatus(row["status"]))
            raise
        on_progress(row)
    return len(rows)

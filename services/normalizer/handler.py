"""Raw webhook → canonical order event: dedupe, validate, apply to the order, queue for publishing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from hookstream.avro import AvroSerde
from hookstream.consumer import Record
from hookstream.db import Database
from hookstream.db.group_commit import GroupCommit
from hookstream.kafka.headers import CHANNEL, EVENT_ID, EVENT_TYPE, RECEIVED_AT, TRACEPARENT, TRACESTATE
from hookstream.kafka.outbox import add_many_to_outbox
from hookstream.tracing import outgoing_traceparent
from hookstream_schemas import topics
from hookstream_services.normalizer.mapping import CanonicalEvent, normalize
from hookstream_services.normalizer.orders import OrderBatch

log = logging.getLogger("hookstream.normalizer")


@dataclass(frozen=True)
class Names:
    """Where the normalizer reads and writes; tests give each run its own."""

    service: str = "normalizer"
    raw_topic: str = topics.RAW.name
    canonical_topic: str = topics.ORDER_EVENTS.name

    @property
    def dlq_topic(self) -> str:
        """A contract topic of its own (``webhooks.raw.v1.dlq``): invalid payloads are the channel's business."""
        return topics.RAW_DLQ.name if self.raw_topic == topics.RAW.name else f"{self.raw_topic}.dlq"


@dataclass(frozen=True)
class _Work:
    event: CanonicalEvent
    traceparent: str
    tracestate: str | None


class Normalizer:
    """The consumer runtime's handler. Concurrent calls (one per order in flight) are written to
    Postgres together by group commit: one transaction per batch instead of one per event."""

    def __init__(
        self,
        db: Database,
        raw: AvroSerde,
        canonical: AvroSerde,
        *,
        names: Names | None = None,
        on_queued: Callable[[], None] | None = None,
        max_batch: int = 200,
    ) -> None:
        self.db = db
        self.raw = raw
        self.canonical = canonical
        self.names = names or Names()
        self.on_queued = on_queued
        self.duplicates = 0
        self.group: GroupCommit[_Work, None] = GroupCommit(self._write_batch, max_batch=max_batch)

    async def __call__(self, record: Record) -> None:
        envelope = self.raw.decode(record.value or b"", record.headers)  # SchemaError: permanent → DLQ
        event = normalize(envelope)  # InvalidPayload / UnsupportedEvent: permanent → DLQ
        # The canonical record continues the trace from this record's span (or the raw record's trace).
        await self.group.submit(
            _Work(event, outgoing_traceparent(record.header(TRACEPARENT)), record.header(TRACESTATE))
        )
        if self.on_queued is not None:
            self.on_queued()

    async def _write_batch(self, batch: list[_Work]) -> list[None]:
        # Pipelined: BEGIN, the dedupe and the lock go in one round trip, the writes and COMMIT in another.
        async with self.db.transaction(pipeline=True) as conn:
            # A body-signed channel's event is marked twice: by its webhook id and by its body's digest,
            # so a captured body sent again under a fresh (unsigned) id is a duplicate too.
            markers = [w.event.event_id for w in batch] + [w.event.body_digest for w in batch if w.event.body_digest]
            seen = await conn.execute(
                """INSERT INTO processed_events (service, event_id) SELECT %s, unnest(%s::text[])
                   ON CONFLICT DO NOTHING RETURNING event_id""",
                (self.names.service, markers),
            )
            orders = await OrderBatch.lock(conn, [w.event for w in batch])
            fresh = {str(row["event_id"]) for row in await seen.fetchall()}
            work = [w for w in batch if _fresh(w.event, fresh)]
            self.duplicates += len(batch) - len(work)
            for e in (w.event for w in batch if w.event.event_id in fresh and not _fresh(w.event, fresh)):
                log.warning(
                    "a body seen before came again under a new webhook id; dropped as a duplicate",
                    extra={"event_id": e.event_id, "order_id": e.order_id, "type": e.type},
                )
            applied = await orders.apply([w.event for w in work])
            rows = []
            for w in work:
                for a in applied[w.event.event_id]:
                    value = self.canonical.encode(a.event.to_avro(a.sequence, a.status))
                    headers = [
                        *self.canonical.headers,
                        (TRACEPARENT, w.traceparent.encode()),
                        (EVENT_ID, a.event.event_id.encode()),
                        (CHANNEL, a.event.channel.encode()),
                        (EVENT_TYPE, a.event.type.encode()),
                        (RECEIVED_AT, str(a.event.received_at_ms).encode()),
                    ]
                    if w.tracestate:
                        headers.append((TRACESTATE, w.tracestate.encode()))
                    rows.append((a.event.order_id, a.event.event_id, value, headers))
            await add_many_to_outbox(conn, self.names.service, self.names.canonical_topic, rows)
        return [None] * len(batch)


def _fresh(event: CanonicalEvent, fresh: set[str]) -> bool:
    return event.event_id in fresh and (event.body_digest is None or event.body_digest in fresh)

"""Raw webhook → canonical order event: dedupe, validate, apply to the order, queue for publishing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from hookstream.avro import AvroSerde
from hookstream.consumer import Record, first_time
from hookstream.db import Database
from hookstream.kafka.headers import CHANNEL, EVENT_ID, TRACEPARENT
from hookstream.kafka.outbox import add_to_outbox
from hookstream.tracing import child_traceparent
from hookstream_services.normalizer.mapping import normalize
from hookstream_services.normalizer.orders import apply_event

log = logging.getLogger("hookstream.normalizer")

SERVICE = "normalizer"
RAW_TOPIC = "webhooks.raw.v1"
CANONICAL_TOPIC = "orders.events.v1"


@dataclass(frozen=True)
class Names:
    """Where the normalizer reads and writes; tests give each run its own."""

    service: str = SERVICE
    raw_topic: str = RAW_TOPIC
    canonical_topic: str = CANONICAL_TOPIC

    @property
    def dlq_topic(self) -> str:
        return f"{self.raw_topic}.dlq"


class Normalizer:
    def __init__(
        self,
        db: Database,
        raw: AvroSerde,
        canonical: AvroSerde,
        *,
        names: Names | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.raw = raw
        self.canonical = canonical
        self.names = names or Names()
        self.on_queued = on_queued
        self.duplicates = 0

    async def __call__(self, record: Record) -> None:
        envelope = self.raw.decode(record.value or b"", record.headers)  # SchemaError: permanent → DLQ
        event = normalize(envelope)  # InvalidPayload / UnsupportedEvent: permanent → DLQ
        traceparent = child_traceparent(record.header(TRACEPARENT))
        # Pipeline mode: statements whose results we do not read go out without waiting for each reply.
        async with self.db.transaction() as conn, conn.pipeline():
            if not await first_time(conn, self.names.service, event.event_id):
                self.duplicates += 1
                return
            for applied in await apply_event(conn, event):
                value = self.canonical.encode(applied.event.to_avro(applied.sequence, applied.status))
                headers = [
                    *self.canonical.headers,
                    (TRACEPARENT, traceparent.encode()),
                    (EVENT_ID, applied.event.event_id.encode()),
                    (CHANNEL, applied.event.channel.encode()),
                ]
                await add_to_outbox(
                    conn,
                    self.names.service,
                    self.names.canonical_topic,
                    applied.event.order_id,
                    applied.event.event_id,
                    value,
                    headers,
                )
        if self.on_queued is not None:
            self.on_queued()

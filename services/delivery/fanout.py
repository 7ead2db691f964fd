"""Fan-out: one canonical event → one delivery per matching subscription, on ``deliveries.v1``.

Keyed ``<subscription>:<order>``, so the consumer runtime gives FIFO per (endpoint, order),
concurrency across keys, retry tiers and parking to the sending side.
"""

from __future__ import annotations

import asyncio

from hookstream.avro import AvroSerde
from hookstream.consumer import Record
from hookstream.kafka import Producer
from hookstream.store.deliveries import DELIVERY, SUBSCRIPTION, DeliveryLog, delivery_id
from hookstream_schemas import topics
from hookstream_services.delivery.cache import SubscriptionCache


class Fanout:
    def __init__(
        self,
        canonical: AvroSerde,
        cache: SubscriptionCache,
        log_: DeliveryLog,
        producer: Producer,
        *,
        topic: str = topics.DELIVERIES.name,
    ) -> None:
        self.canonical = canonical
        self.cache = cache
        self.log = log_
        self.producer = producer
        self.topic = topic

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)
        wanted = [s for s in await self.cache.all() if s.wants(event["type"])]
        if not wanted:
            return
        kept = [(k, v) for k, v in record.headers if k not in (SUBSCRIPTION, DELIVERY)]
        await self.log.create(
            [(s.id, event["event_id"], event["order_id"], event["type"]) for s in wanted], record.value or b"", kept
        )
        # All at once: an event with a thousand subscribers waits for one round of acknowledgements.
        acks = [
            self.producer.send_nowait(
                self.topic,
                record.value,
                key=f"{sub.id}:{event['order_id']}",
                headers=[
                    *kept,
                    (SUBSCRIPTION, sub.id.encode()),
                    (DELIVERY, delivery_id(sub.id, event["event_id"]).encode()),
                ],
            )
            for sub in wanted
        ]
        await asyncio.gather(*acks)

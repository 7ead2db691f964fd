"""Fan-out: one canonical event → one delivery per matching subscription.

The common case is sent from here at once: a new delivery whose (endpoint, order) has nothing
unfinished before it, to an endpoint that is neither rate-limited nor behind an open circuit. Its
first attempt needs no second trip through Kafka. Everything else goes to ``deliveries.v1``, keyed
``<subscription>:<order>``, where the sending side's consumer runtime gives FIFO per (endpoint,
order), retry tiers and parking: deliveries that must wait, redeliveries, and first attempts that
failed here (handed over with the ``ATTEMPTED`` header, so the retry follows the schedule and the
endpoint is not called twice in a row). Once one delivery of an (endpoint, order) is on that
path, later ones follow it there until it is settled, so their order holds.
"""

from __future__ import annotations

import asyncio

from hookstream.avro import AvroSerde
from hookstream.consumer import Record
from hookstream.kafka import Producer
from hookstream.store.deliveries import ATTEMPTED, DELIVERY, SUBSCRIPTION, DeliveryLog, delivery_id
from hookstream.store.subscriptions import Subscription
from hookstream.tracing import continued
from hookstream_schemas import topics
from hookstream_services.delivery.cache import SubscriptionCache
from hookstream_services.delivery.send import Send


class Fanout:
    def __init__(
        self,
        canonical: AvroSerde,
        cache: SubscriptionCache,
        log_: DeliveryLog,
        producer: Producer,
        *,
        topic: str = topics.DELIVERIES.name,
        send: Send | None = None,
    ) -> None:
        """``send``: make first attempts here when they need not wait; None queues every delivery."""
        self.canonical = canonical
        self.cache = cache
        self.log = log_
        self.producer = producer
        self.topic = topic
        self.send = send

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)
        wanted = [s for s in await self.cache.all() if s.wants(event["type"])]
        if not wanted:
            return
        kept = continued([(k, v) for k, v in record.headers if k not in (SUBSCRIPTION, DELIVERY, ATTEMPTED)])
        clear = await self.log.create(
            [(s.id, event["event_id"], event["order_id"], event["type"]) for s in wanted], record.value or b"", kept
        )
        send = self.send
        now: list[Subscription] = []
        queued: list[tuple[Subscription, bytes | None]] = []
        for sub in wanted:
            if send is not None and sub.id in clear and send.sends_now(sub):
                now.append(sub)
            else:
                queued.append((sub, None))
        if send is not None and now:
            outcomes = await asyncio.gather(
                *(send.first_attempt(s, delivery_id(s.id, event["event_id"]), event) for s in now)
            )
            queued += [(s, handed_over) for s, handed_over in zip(now, outcomes, strict=True) if handed_over]
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
                    *([(ATTEMPTED, handed_over)] if handed_over else []),
                ],
            )
            for sub, handed_over in queued
        ]
        await asyncio.gather(*acks)

"""Publishing envelopes to ``webhooks.raw.v1``: the Kafka adapter behind a small interface."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from hookstream.avro import SchemaStore
from hookstream.http.probes import BrokerCheck
from hookstream.kafka import Producer, TopicAdmin, wait_for_broker
from hookstream.kafka.headers import CHANNEL, EVENT_ID, RECEIVED_AT, TRACEPARENT, TRACESTATE
from hookstream.sensors import Sensor
from hookstream.settings import Brokers, KafkaSettings
from hookstream.tracing import current_traceparent, producing
from hookstream_schemas import topics
from hookstream_services.ingress.config import IngressOptions


@dataclass(frozen=True)
class Envelope:
    event_id: str
    channel: str
    event_type: str
    order_key: str
    received_at_ms: int
    content_type: str
    headers: dict[str, str]
    body: bytes
    traceparent: str
    tracestate: str | None = None


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None:
        """Return only once the envelope is durably stored; raise a retriable HookstreamError otherwise."""

    async def ready(self) -> bool: ...


class KafkaPublisher:
    def __init__(
        self,
        bootstrap_servers: Brokers,
        options: IngressOptions,
        kafka: KafkaSettings | None = None,
        *,
        sensors: Sensor | None = None,
        create_topic: bool = True,
    ) -> None:
        self.create_topic = create_topic
        self.bootstrap_servers = bootstrap_servers
        self.options = options
        # Records that cannot be stored within the publish timeout are given up by the producer too,
        # so a broker outage cannot grow the queue without bound.
        settings = (kafka or KafkaSettings()).model_copy(
            update={
                "delivery_timeout_ms": options.publish_timeout_ms,
                "linger_ms": 1,
                "statistics_interval_ms": 1000,  # readiness reads the producer id from the statistics
            }
        )
        self.producer = Producer(bootstrap_servers, settings, sensors=sensors)
        self.serde = SchemaStore.bundled().serde(topics.RAW.name)
        self.broker = BrokerCheck(bootstrap_servers)

    async def start(self) -> None:
        await asyncio.to_thread(wait_for_broker, self.bootstrap_servers, timeout_ms=30_000)
        admin = TopicAdmin(self.bootstrap_servers)
        if self.create_topic:
            await asyncio.to_thread(admin.ensure_topics, [self.options.topic_spec])
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop(timeout_ms=self.options.publish_timeout_ms)

    async def publish(self, envelope: Envelope) -> None:
        value = self.serde.encode(
            {
                "event_id": envelope.event_id,
                "channel": envelope.channel,
                "event_type": envelope.event_type,
                "order_key": envelope.order_key,
                "received_at": envelope.received_at_ms,
                "content_type": envelope.content_type,
                "headers": envelope.headers,
                "body": envelope.body,
            }
        )
        with producing(self.options.topic, envelope.order_key):  # a PRODUCER span when tracing is on
            headers = [
                *self.serde.headers,
                (TRACEPARENT, current_traceparent(envelope.traceparent).encode()),
                (EVENT_ID, envelope.event_id.encode()),
                (CHANNEL, envelope.channel.encode()),
                (RECEIVED_AT, str(envelope.received_at_ms).encode()),
            ]
            if envelope.tracestate:
                headers.append((TRACESTATE, envelope.tracestate.encode()))
            # No timer of our own: the producer's delivery.timeout.ms is publish_timeout_ms, so librdkafka
            # reports every record, stored or failed, within it (DeliveryFailed → 503).
            await self.producer.send_nowait(self.options.topic, value, key=envelope.order_key, headers=headers)

    async def ready(self) -> bool:
        # Answering metadata is not enough: a broker still loading its coordinators keeps the first
        # acks=all produce waiting. Ready once the idempotent producer has its id too.
        checks = [*await self.broker.ready(), *await self.producer.ready()]
        return all(ok for _, ok, _ in checks)

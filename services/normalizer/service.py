"""The normalizer's parts as one lifecycle group: database, outbox relay, consumer runtime, dedupe sweeper."""

from __future__ import annotations

import logging

from hookstream.avro import SchemaStore
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.kafka.outbox import OutboxRelay
from hookstream.lifecycle import LifecycleGroup, Periodic
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, KafkaSettings
from hookstream_schemas import topics
from hookstream_schemas.topics import TopicSpec
from hookstream_services.normalizer.handler import Names, Normalizer
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("hookstream.normalizer")


class NormalizerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_NORMALIZER_", extra="ignore")

    dedupe_window_hours: int = 7 * 24  # the spec asks for at least 72 h
    dedupe_sweep_interval_s: int = 600
    canonical_partitions: int = topics.ORDER_EVENTS.partitions
    canonical_retention_ms: int = topics.ORDER_EVENTS.retention_ms
    outbox_batch_size: int = 500
    # Where it reads and writes; change them only to run a second, separate pipeline (tests do).
    service_name: str = "normalizer"
    raw_topic: str = topics.RAW.name
    canonical_topic: str = topics.ORDER_EVENTS.name


class NormalizerService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: NormalizerSettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        self.settings = s = settings
        self.names = names = Names(s.service_name, s.raw_topic, s.canonical_topic)
        self.db = Database(database_url)
        schemas = SchemaStore.bundled()
        self.relay = OutboxRelay(
            names.service, bootstrap_servers, self.db, database_url, batch_size=s.outbox_batch_size, sensors=sensors
        )
        self.handler = Normalizer(
            self.db,
            schemas.serde(topics.RAW.name),
            schemas.serde(topics.ORDER_EVENTS.name),
            names=names,
            on_queued=self.relay.wake,
        )
        self.consumer = ConsumerService(
            names.service,
            names.raw_topic,
            self.handler,
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=consumer,
            kafka=kafka,
            dlq_topic=names.dlq_topic,
            sensors=sensors,
            create_topics=False,
        )
        sweeper = Periodic(s.dedupe_sweep_interval_s, self._expire_dedupe_markers, "dedupe marker expiry")
        super().__init__(
            names.service,
            [self.db, self.relay, self.consumer, sweeper],
            create_topics_on=bootstrap_servers if create_topics else None,
        )

    def topics(self) -> list[TopicSpec]:
        s = self.settings
        contracts = [
            topics.RAW.renamed(s.raw_topic),
            TopicSpec(s.canonical_topic, s.canonical_partitions, s.canonical_retention_ms),
        ]
        partitions = topics.RAW.partitions
        return [*contracts, *self.relay.topics(), *self.consumer.topics(partitions)]

    async def _expire_dedupe_markers(self) -> None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """DELETE FROM processed_events WHERE service = %s
                   AND processed_at < now() - make_interval(hours => %s)""",
                (self.names.service, self.settings.dedupe_window_hours),
            )
            if cur.rowcount:
                log.info("dedupe markers expired", extra={"deleted": cur.rowcount})

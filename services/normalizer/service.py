"""The normalizer's parts wired together, with one lifecycle: consumer runtime, outbox relay, dedupe sweeper."""

from __future__ import annotations

import asyncio
import logging

from hookstream.avro import SchemaStore
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.kafka import TopicAdmin, TopicSpec
from hookstream.kafka.outbox import OutboxRelay
from hookstream.lifecycle import Lifecycle, cancel, every, first_failure
from hookstream.settings import KafkaSettings
from hookstream_services.normalizer.handler import CANONICAL_TOPIC, RAW_TOPIC, SERVICE, Names, Normalizer
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("hookstream.normalizer")

DLQ_TOPIC = Names().dlq_topic


class NormalizerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_NORMALIZER_", extra="ignore")

    dedupe_window_hours: int = 7 * 24  # the spec asks for at least 72 h
    dedupe_sweep_interval_s: int = 600
    canonical_partitions: int | None = None  # default: as many as webhooks.raw.v1
    canonical_retention_ms: int = 30 * 24 * 3600 * 1000
    outbox_batch_size: int = 500
    # Where it reads and writes; change them only to run a second, separate pipeline (tests do).
    service_name: str = SERVICE
    raw_topic: str = RAW_TOPIC
    canonical_topic: str = CANONICAL_TOPIC


class NormalizerService(Lifecycle):
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        *,
        settings: NormalizerSettings | None = None,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.settings = s = settings or NormalizerSettings()
        self.names = names = Names(s.service_name, s.raw_topic, s.canonical_topic)
        self.bootstrap_servers = bootstrap_servers
        self.db = Database(database_url)
        schemas = SchemaStore.bundled()
        self.relay = OutboxRelay(
            names.service, bootstrap_servers, self.db, database_url, batch_size=self.settings.outbox_batch_size
        )
        self.handler = Normalizer(
            self.db, schemas.serde(RAW_TOPIC), schemas.serde(CANONICAL_TOPIC), names=names, on_queued=self.relay.wake
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
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.db.start()
        await asyncio.to_thread(self._ensure_canonical_topic)
        await self.relay.start()
        await self.consumer.start()
        self._sweeper = asyncio.get_running_loop().create_task(
            every(self.settings.dedupe_sweep_interval_s, self._expire_dedupe_markers, "dedupe marker expiry")
        )

    def _ensure_canonical_topic(self) -> None:
        admin = TopicAdmin(self.bootstrap_servers)
        partitions = self.settings.canonical_partitions or admin.partition_count(self.names.raw_topic) or 6
        admin.ensure_topics([TopicSpec(self.names.canonical_topic, partitions, self.settings.canonical_retention_ms)])

    async def stop(self) -> None:
        await cancel(self._sweeper)
        await self.consumer.stop()
        await self.relay.stop()
        await self.db.stop()

    async def wait(self) -> None:
        """Until the consumer or the relay stops with an error."""
        await first_failure(self.consumer.wait(), self.relay.wait())

    async def _expire_dedupe_markers(self) -> None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """DELETE FROM processed_events WHERE service = %s
                   AND processed_at < now() - make_interval(hours => %s)""",
                (self.names.service, self.settings.dedupe_window_hours),
            )
            if cur.rowcount:
                log.info("dedupe markers expired", extra={"deleted": cur.rowcount})

"""The delivery service: fan-out and sending, each on the consumer runtime with its own group."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from hookstream.avro import SchemaStore
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.lifecycle import Lifecycle, cancel, every, first_failure
from hookstream.settings import CommaList, KafkaSettings
from hookstream.subscriptions import SubscriptionStore
from hookstream_services.delivery.deliveries import DeliveryLog
from hookstream_services.delivery.handlers import (
    ALERTS_TOPIC,
    DELIVERIES_TOPIC,
    Breaker,
    Fanout,
    Send,
    SubscriptionCache,
)
from hookstream_services.delivery.sender import Sender
from pydantic_settings import BaseSettings, SettingsConfigDict

CANONICAL_TOPIC = "orders.events.v1"
log = logging.getLogger("hookstream.delivery")


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_DELIVERY_", extra="ignore")

    retry_schedule: CommaList = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
    retry_jitter: float = 0.1
    keys_in_flight_per_partition: int = 200  # 6 partitions x 200: over 1,000 deliveries in flight
    allow_targets: CommaList = []  # e.g. loopback for local tests; see hookstream.outbound.ssrf.CATEGORIES
    retry_other_4xx: bool = False
    auto_disable_after_hours: float = 120
    subscription_refresh_ms: int = 2_000
    max_connections: int = 1_000
    max_connections_per_host: int = 100
    breaker_window: int = 20
    breaker_min_calls: int = 5
    breaker_failure_ratio: float = 0.5
    breaker_cooldown_s: float = 30
    log_retention_days: float = 30  # settled deliveries and their attempts are deleted after this
    # Where it reads and writes; change them only to run a second, separate pipeline (tests do).
    service_name: str = "delivery"
    canonical_topic: str = CANONICAL_TOPIC
    deliveries_topic: str = DELIVERIES_TOPIC


class DeliveryService(Lifecycle):
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        *,
        settings: DeliverySettings | None = None,
        kafka: KafkaSettings | None = None,
        commit_interval_ms: int = 1_000,
    ) -> None:
        self.settings = s = settings or DeliverySettings()
        self.bootstrap_servers = bootstrap_servers
        self.db = Database(database_url)
        self.producer = Producer(bootstrap_servers, kafka)
        self.sender = Sender(
            allow_targets=frozenset(s.allow_targets),
            retry_other_4xx=s.retry_other_4xx,
            max_connections=s.max_connections,
            max_per_host=s.max_connections_per_host,
        )
        serde = SchemaStore.bundled().serde(CANONICAL_TOPIC)
        cache = SubscriptionCache(SubscriptionStore(self.db), s.subscription_refresh_ms / 1000)
        self.deliveries = deliveries = DeliveryLog(self.db)
        self._sweeper: asyncio.Task[None] | None = None
        send_settings = ConsumerSettings(
            retry_delays=s.retry_schedule,
            retry_jitter=s.retry_jitter,
            keys_in_flight_per_partition=s.keys_in_flight_per_partition,
            max_buffered_per_partition=max(2_000, 4 * s.keys_in_flight_per_partition),
            commit_interval_ms=commit_interval_ms,
        )
        self.fanout = ConsumerService(
            s.service_name,
            s.canonical_topic,
            Fanout(serde, cache, deliveries, self.producer, topic=s.deliveries_topic),
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=ConsumerSettings(
                retry_delays=["5s", "1m"],
                keys_in_flight_per_partition=s.keys_in_flight_per_partition,
                commit_interval_ms=commit_interval_ms,
            ),
            kafka=kafka,
        )
        self.send = Send(
            serde,
            cache,
            deliveries,
            self.sender,
            self.db,
            self.producer,
            max_attempts=len(s.retry_schedule) + 1,
            auto_disable_after=timedelta(hours=s.auto_disable_after_hours),
            breaker=lambda: Breaker(
                window=s.breaker_window,
                min_calls=s.breaker_min_calls,
                failure_ratio=s.breaker_failure_ratio,
                cooldown_s=s.breaker_cooldown_s,
            ),
        )
        self.sending = ConsumerService(
            f"{s.service_name}-send",
            s.deliveries_topic,
            self.send,
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=send_settings,
            kafka=kafka,
        )

    async def start(self) -> None:
        await self.db.start()
        await asyncio.to_thread(self._ensure_topics)
        await self.producer.start()
        await self.sender.start()
        await self.sending.start()
        await self.fanout.start()
        self._sweeper = asyncio.get_running_loop().create_task(every(600, self._expire_log, "delivery log expiry"))

    async def _expire_log(self) -> None:
        gone = await self.deliveries.expire(timedelta(days=self.settings.log_retention_days))
        if gone:
            log.info("delivery log expired", extra={"deleted": gone})

    def _ensure_topics(self) -> None:
        admin = TopicAdmin(self.bootstrap_servers)
        partitions = admin.partition_count(self.settings.canonical_topic) or 6
        week = 7 * 24 * 3600 * 1000
        admin.ensure_topics(
            [TopicSpec(self.settings.deliveries_topic, partitions, week), TopicSpec(ALERTS_TOPIC, 1, 4 * week)]
        )

    async def stop(self) -> None:
        await cancel(self._sweeper)
        await self.fanout.stop()
        await self.sending.stop()
        await self.sender.stop()
        await self.producer.stop()
        await self.db.stop()

    async def wait(self) -> None:
        """Until fan-out or sending stops with an error."""
        await first_failure(self.fanout.wait(), self.sending.wait())

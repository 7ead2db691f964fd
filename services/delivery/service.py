"""The delivery service as one lifecycle group: fan-out and sending, each on the consumer runtime with its own group."""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from hookstream.avro import SchemaStore
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.http.outbound.sender import Sender
from hookstream.kafka import Producer
from hookstream.lifecycle import LifecycleGroup, Periodic
from hookstream.secretbox import SecretsSettings
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, CommaList, KafkaSettings
from hookstream.store.circuits import CircuitLog
from hookstream.store.deliveries import DeliveryLog
from hookstream.store.subscriptions import KeyCheck, SubscriptionStore
from hookstream_schemas import topics
from hookstream_schemas.topics import TopicSpec
from hookstream_services.delivery.breaker import Breaker
from hookstream_services.delivery.cache import SubscriptionCache
from hookstream_services.delivery.fanout import Fanout
from hookstream_services.delivery.send import Send
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("hookstream.delivery")


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_DELIVERY_", extra="ignore")

    retry_schedule: CommaList = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
    retry_jitter: float = 0.1
    keys_in_flight_per_partition: int = 200  # 6 partitions x 200: over 1,000 deliveries in flight
    allow_targets: CommaList = []  # e.g. loopback for local tests; see hookstream.http.outbound.ssrf.CATEGORIES
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
    commit_interval_ms: int = 1_000
    # Fan-out sends a delivery that need not wait itself (no trip through deliveries.v1); False queues all.
    first_attempt_at_fanout: bool = True
    # Where it reads and writes; change them only to run a second, separate pipeline (tests do).
    service_name: str = "delivery"
    canonical_topic: str = topics.ORDER_EVENTS.name
    deliveries_topic: str = topics.DELIVERIES.name
    alerts_topic: str = topics.ALERTS.name
    # HOOKSTREAM_SECRETS_KEYS (or .hookstream/stack.env): the keys partner secrets are sealed with.
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)


class DeliveryService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: DeliverySettings,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        self.settings = s = settings
        sensors = sensors or Sensors()
        self.db = Database(database_url)
        self.producer = Producer(bootstrap_servers, kafka, sensors=sensors)
        self.sender = Sender(
            allow_targets=frozenset(s.allow_targets),
            retry_other_4xx=s.retry_other_4xx,
            max_connections=s.max_connections,
            max_per_host=s.max_connections_per_host,
        )
        serde = SchemaStore.bundled().serde(topics.ORDER_EVENTS.name)
        subscriptions = SubscriptionStore(self.db, s.secrets.keyring())
        cache = SubscriptionCache(subscriptions, s.subscription_refresh_ms / 1000)
        self.deliveries = deliveries = DeliveryLog(self.db)
        self.send = Send(
            serde,
            cache,
            deliveries,
            self.sender,
            self.producer,
            max_attempts=len(s.retry_schedule) + 1,
            auto_disable_after=timedelta(hours=s.auto_disable_after_hours),
            breaker=lambda: Breaker(
                window=s.breaker_window,
                min_calls=s.breaker_min_calls,
                failure_ratio=s.breaker_failure_ratio,
                cooldown_s=s.breaker_cooldown_s,
            ),
            circuits=CircuitLog(self.db),
            instance=f"{socket.gethostname()}:{os.getpid()}",
            alerts_topic=s.alerts_topic,
            sensors=sensors,
        )
        self.fanout = ConsumerService(
            s.service_name,
            s.canonical_topic,
            Fanout(
                serde,
                cache,
                deliveries,
                self.producer,
                topic=s.deliveries_topic,
                send=self.send if s.first_attempt_at_fanout else None,
            ),
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=ConsumerSettings(
                retry_delays=["5s", "1m"],
                keys_in_flight_per_partition=s.keys_in_flight_per_partition,
                commit_interval_ms=s.commit_interval_ms,
            ),
            kafka=kafka,
            sensors=sensors,
            create_topics=False,
        )
        self.sending = ConsumerService(
            f"{s.service_name}-send",
            s.deliveries_topic,
            self.send,
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=ConsumerSettings(
                retry_delays=s.retry_schedule,
                retry_jitter=s.retry_jitter,
                keys_in_flight_per_partition=s.keys_in_flight_per_partition,
                max_buffered_per_partition=max(2_000, 4 * s.keys_in_flight_per_partition),
                commit_interval_ms=s.commit_interval_ms,
            ),
            kafka=kafka,
            sensors=sensors,
            create_topics=False,
            on_dead_lettered=self.send.dead_lettered,
        )
        expiry = Periodic(600, self._expire_log, "delivery log expiry")
        super().__init__(
            s.service_name,
            [self.db, KeyCheck(subscriptions), self.producer, self.sender, self.sending, self.fanout, expiry],
            create_topics_on=bootstrap_servers if create_topics else None,
        )

    def topics(self) -> list[TopicSpec]:
        s = self.settings
        contracts = [
            topics.ORDER_EVENTS.renamed(s.canonical_topic),
            topics.DELIVERIES.renamed(s.deliveries_topic),
            topics.ALERTS.renamed(s.alerts_topic),
        ]
        partitions = topics.DELIVERIES.partitions
        return [*contracts, *self.fanout.topics(partitions), *self.sending.topics(partitions)]

    async def _expire_log(self) -> None:
        gone = await self.deliveries.expire(timedelta(days=self.settings.log_retention_days))
        if gone:
            log.info("delivery log expired", extra={"deleted": gone})

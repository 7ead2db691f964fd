"""The delivery service: fan-out and sending, each on the consumer runtime with its own group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import timedelta
from types import TracebackType
from typing import Annotated

from hookstream.avro import SchemaStore
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.settings import KafkaSettings
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
from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CANONICAL_TOPIC = "orders.events.v1"
log = logging.getLogger("hookstream.delivery")


class DeliverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_DELIVERY_", extra="ignore")

    retry_schedule: Annotated[list[str], NoDecode] = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
    retry_jitter: float = 0.1
    keys_in_flight_per_partition: int = 200  # 6 partitions x 200: over 1,000 deliveries in flight
    allow_targets: Annotated[
        list[str], NoDecode
    ] = []  # e.g. loopback for local tests; see hookstream.outbound.ssrf.CATEGORIES
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

    @field_validator("retry_schedule", "allow_targets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):  # from the environment: "5s,1m" or a JSON list
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        return value


class DeliveryService:
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
        self._sweeper = asyncio.get_running_loop().create_task(self._expire_log())

    async def _expire_log(self) -> None:
        while True:
            try:
                gone = await self.deliveries.expire(timedelta(days=self.settings.log_retention_days))
                if gone:
                    log.info("delivery log expired", extra={"deleted": gone})
            except Exception as exc:  # the next round tries again
                log.warning("delivery log expiry failed", extra={"error": str(exc)})
            await asyncio.sleep(600)

    def _ensure_topics(self) -> None:
        admin = TopicAdmin(self.bootstrap_servers)
        partitions = admin.partition_count(self.settings.canonical_topic) or 6
        week = 7 * 24 * 3600 * 1000
        admin.ensure_topics(
            [TopicSpec(self.settings.deliveries_topic, partitions, week), TopicSpec(ALERTS_TOPIC, 1, 4 * week)]
        )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.fanout.stop()
        await self.sending.stop()
        await self.sender.stop()
        await self.producer.stop()
        await self.db.stop()

    async def wait(self) -> None:
        waits = [asyncio.ensure_future(self.fanout.wait()), asyncio.ensure_future(self.sending.wait())]
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()

    async def __aenter__(self) -> DeliveryService:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

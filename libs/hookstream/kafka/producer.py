"""Idempotent, acks=all producer on confluent-kafka with asyncio delivery futures.

``await producer.send(...)`` returns only once the broker has acknowledged the
record (all in-sync replicas), which is what lets ingress answer 200 honestly.
librdkafka's delivery reports are served on a poll thread of ours; every report
served by one ``poll()`` is handed to the event loop in one ``call_soon_threadsafe``,
because one loop wake-up per acknowledged record was the ingress bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as _RdProducer

from hookstream.errors import DeliveryFailed, HookstreamError, ProducerQueueFull
from hookstream.kafka.admin import ClientConfig, client_config
from hookstream.kafka.headers import HeaderList
from hookstream.lifecycle import Lifecycle
from hookstream.sensors import Sensor
from hookstream.settings import Brokers, KafkaConnection, KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordMetadata:
    topic: str
    partition: int
    offset: int


class Producer(Lifecycle):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        settings: KafkaSettings | None = None,
        *,
        sensors: Sensor | None = None,
        **overrides: Any,
    ) -> None:
        self.connection = KafkaConnection.of(bootstrap_servers)
        self.bootstrap_servers = self.connection.bootstrap_servers
        self._settings = settings or KafkaSettings()
        self._overrides = overrides
        self.sensors = sensors or Sensor()
        # librdkafka's idempotence state from its statistics: "Assigned" once the broker gave this
        # producer its id, i.e. once a produce can succeed (a broker still loading its transaction
        # coordinators after a restart keeps the first acks=all produce waiting for up to 30 s).
        self.idempotence_state = "Init"
        self._producer: _RdProducer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Reports served since the last hand-over; flush() in stop() serves them from another thread.
        self._reports_lock = threading.Lock()
        self._reports: list[tuple[asyncio.Future[RecordMetadata], KafkaError | None, Message]] = []

    def _config(self) -> ClientConfig:
        s = self._settings
        return client_config(
            self.connection,
            **{
                "client.id": s.client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": s.linger_ms,
                "delivery.timeout.ms": s.delivery_timeout_ms,
                "request.timeout.ms": s.request_timeout_ms,
                "socket.connection.setup.timeout.ms": s.connect_timeout_ms,
                "queue.buffering.max.messages": s.queue_max_messages,
                "queue.buffering.max.kbytes": s.queue_max_kbytes,
                "compression.type": "lz4",
                "statistics.interval.ms": s.statistics_interval_ms,
                "stats_cb": self._on_stats,
                "logger": log,
                **self._overrides,
            },
        )

    def _on_stats(self, stats_json: str) -> None:
        with contextlib.suppress(ValueError):
            self.idempotence_state = json.loads(stats_json).get("eos", {}).get("idemp_state", self.idempotence_state)

    async def ready(self) -> list[tuple[str, bool, str]]:
        ok = self._producer is not None and self.idempotence_state == "Assigned"
        return [(f"producer {self._settings.client_id}", ok, f"idempotent producer {self.idempotence_state}")]

    async def start(self) -> None:
        if self._producer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._producer = _RdProducer(self._config())
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(0.5)  # returns as soon as a delivery report is served; the timeout only bounds stop()
            self._hand_over_reports()

    def _hand_over_reports(self) -> None:
        if not self._reports:
            return
        with self._reports_lock:
            reports, self._reports = self._reports, []
        if any(err is None for _, err, _ in reports):
            self.idempotence_state = "Assigned"  # an acknowledged record proves it before the next statistics
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve_all, reports, self.sensors)

    def _report(self, future: asyncio.Future[RecordMetadata]) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            with self._reports_lock:
                self._reports.append((future, err, msg))

        return on_delivery

    async def stop(self, *, timeout_ms: int = 30_000) -> int:
        """Flush what is queued, stop polling; return how many records were left undelivered."""
        if self._producer is None:
            return 0
        producer = self._producer
        remaining: int = await asyncio.to_thread(self._flush, producer, timeout_ms / 1000)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        producer.poll(0)
        self._hand_over_reports()
        self._producer = None
        if remaining:
            log.error("producer stopped with undelivered records", extra={"undelivered": remaining})
        return remaining

    def _flush(self, producer: _RdProducer, timeout_s: float) -> int:
        remaining: int = producer.flush(timeout_s)
        self._hand_over_reports()
        return remaining

    def __len__(self) -> int:
        """Records queued locally and not yet acknowledged."""
        return len(self._producer) if self._producer is not None else 0

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderList | None = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        """Send one record and wait for the broker's acknowledgement."""
        return await self.send_nowait(topic, value, key=key, headers=headers, partition=partition)

    def send_nowait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderList | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one record; the returned future resolves on the broker's acknowledgement."""
        if self._producer is None:
            raise HookstreamError("producer is not started: call `await producer.start()` first")
        assert self._loop is not None
        future: asyncio.Future[RecordMetadata] = self._loop.create_future()
        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers, "on_delivery": self._report(future)}
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise ProducerQueueFull(
                f"producer queue is full ({len(self._producer)} records waiting for the broker)"
            ) from exc
        return future


def _resolve_all(
    reports: list[tuple[asyncio.Future[RecordMetadata], KafkaError | None, Message]], sensors: Sensor
) -> None:
    for future, err, msg in reports:
        failure = (
            None
            if err is None
            else DeliveryFailed(f"delivery to {msg.topic()!r} failed: {err.str()}", retriable=err.retriable())
        )
        sensors.on_produced(msg.topic() or "", failure)
        if future.done():  # the waiter was cancelled; the record's fate is already logged by librdkafka
            continue
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(RecordMetadata(msg.topic() or "", msg.partition() or 0, msg.offset() or 0))

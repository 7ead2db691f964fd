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
from hookstream.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordMetadata:
    topic: str
    partition: int
    offset: int


class Producer(Lifecycle):
    def __init__(self, bootstrap_servers: str, settings: KafkaSettings | None = None, **overrides: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._settings = settings or KafkaSettings()
        self._overrides = overrides
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
            self.bootstrap_servers,
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
                "logger": log,
                **self._overrides,
            },
        )

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
            producer.poll(0.05)
            self._hand_over_reports()

    def _hand_over_reports(self) -> None:
        if not self._reports:
            return
        with self._reports_lock:
            reports, self._reports = self._reports, []
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(_resolve_all, reports)

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


def _resolve_all(reports: list[tuple[asyncio.Future[RecordMetadata], KafkaError | None, Message]]) -> None:
    for future, err, msg in reports:
        if future.done():  # the waiter was cancelled; the record's fate is already logged by librdkafka
            continue
        if err is not None:
            future.set_exception(
                DeliveryFailed(f"delivery to {msg.topic()!r} failed: {err.str()}", retriable=err.retriable())
            )
        else:
            future.set_result(RecordMetadata(msg.topic() or "", msg.partition() or 0, msg.offset() or 0))

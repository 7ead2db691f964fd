"""Idempotent, acks=all producer on confluent-kafka with asyncio delivery futures.

``await producer.send(...)`` returns only once the broker has acknowledged the
record (all in-sync replicas), which is what lets ingress answer 200 honestly.
librdkafka's callbacks run on a poll thread of ours and are handed to the event
loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as _RdProducer

from hookstream.errors import DeliveryFailed, HookstreamError, ProducerQueueFull
from hookstream.kafka.admin import ClientConfig, client_config
from hookstream.kafka.headers import HeaderList
from hookstream.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordMetadata:
    topic: str
    partition: int
    offset: int


class Producer:
    def __init__(self, bootstrap_servers: str, settings: KafkaSettings | None = None, **overrides: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._settings = settings or KafkaSettings()
        self._overrides = overrides
        self._producer: _RdProducer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()

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
        self._producer = _RdProducer(self._config())
        self._stopping.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(0.05)

    async def stop(self, *, timeout_ms: int = 30_000) -> int:
        """Flush what is queued, stop polling; return how many records were left undelivered."""
        if self._producer is None:
            return 0
        producer = self._producer
        remaining: int = await asyncio.to_thread(producer.flush, timeout_ms / 1000)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        producer.poll(0)
        self._producer = None
        if remaining:
            log.error("producer stopped with undelivered records", extra={"undelivered": remaining})
        return remaining

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RecordMetadata] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_resolve, future, err, msg)

        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise ProducerQueueFull(
                f"producer queue is full ({len(self._producer)} records waiting for the broker)"
            ) from exc
        return future


def _resolve(future: asyncio.Future[RecordMetadata], err: KafkaError | None, msg: Message) -> None:
    if future.done():  # the waiter was cancelled; the record's fate is already logged by librdkafka
        return
    if err is not None:
        future.set_exception(
            DeliveryFailed(f"delivery to {msg.topic()!r} failed: {err.str()}", retriable=err.retriable())
        )
    else:
        future.set_result(RecordMetadata(msg.topic() or "", msg.partition() or 0, msg.offset() or 0))

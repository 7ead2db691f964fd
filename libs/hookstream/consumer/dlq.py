"""Dead letters: list them with their reasons, and redrive a selection back to the service's input.

A redriven record goes to ``hookstream.<service>.redrive``, which only that service reads, so
other services that share the original topic do not see it twice. Its failure headers are
dropped (it starts again at attempt 1); ``hookstream-redriven-from`` says where it came from.
Each redrive is recorded in Postgres, so ``list`` shows what still waits for a decision and the
same dead letter is not sent back twice by accident.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, TopicPartition

from hookstream.consumer.retry import FAILURE_HEADERS, RetryPolicy
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.kafka import Producer
from hookstream.kafka.admin import client_config, watermarks
from hookstream.kafka.headers import (
    ATTEMPT,
    ERROR_CLASS,
    ERROR_MESSAGE,
    EVENT_ID,
    FIRST_FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    header_str,
)
from hookstream.settings import Brokers
from hookstream.store.dead_letters import RedriveLog

REDRIVEN_FROM = "hookstream-redriven-from"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int
    redriven: bool = False

    def header(self, name: str) -> str | None:
        return header_str(self.headers, name)

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def event_id(self) -> str:
        return self.header(EVENT_ID) or "-"

    @property
    def reason(self) -> str:
        return f"{(self.header(ERROR_CLASS) or '?').rsplit('.', 1)[-1]}: {self.header(ERROR_MESSAGE) or ''}"

    @property
    def attempts(self) -> int:
        return int(self.header(ATTEMPT) or 0)

    @property
    def origin(self) -> str:
        return f"{self.header(ORIGINAL_TOPIC)}[{self.header(ORIGINAL_PARTITION)}]@{self.header(ORIGINAL_OFFSET)}"

    @property
    def first_failed_at_ms(self) -> int:
        return int(self.header(FIRST_FAILED_AT) or self.timestamp_ms)

    def redrive_headers(self) -> list[tuple[str, bytes]]:
        kept = [(k, v) for k, v in self.headers if k not in FAILURE_HEADERS and k != REDRIVEN_FROM]
        return [*kept, (REDRIVEN_FROM, f"{self.topic}:{self.position}".encode())]


def read_dead_letters(
    bootstrap_servers: Brokers,
    topic: str,
    *,
    after: tuple[int, int] | None = None,
    limit: int | None = None,
    timeout_s: float = 10.0,
) -> list[DeadLetter]:
    """The records on the DLQ topic in (partition, offset) order, read without a consumer group (nothing
    is committed): those after position ``after``, at most ``limit`` of them (a page: one partition is
    read at a time, so no more than a page is held, however long the topic)."""
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            **{"group.id": f"hookstream-dlq-reader-{uuid.uuid4().hex}", "enable.auto.commit": False},
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        if metadata.topics[topic].error is not None:
            raise ConfigurationError(f"there is no topic {topic!r}: has the service run yet?")
        letters: list[DeadLetter] = []
        for partition in sorted(metadata.topics[topic].partitions):
            if after is not None and partition < after[0]:
                continue
            low, high = watermarks(consumer, TopicPartition(topic, partition), timeout_s)
            start = max(low, after[1] + 1) if after is not None and partition == after[0] else low
            wanted = high - start if limit is None else min(high - start, limit - len(letters))
            if wanted > 0:
                letters += _read_partition(consumer, topic, partition, start, wanted, timeout_s)
            if limit is not None and len(letters) >= limit:
                break
        return letters
    finally:
        consumer.close()


def _read_partition(
    consumer: Consumer, topic: str, partition: int, start: int, count: int, timeout_s: float
) -> list[DeadLetter]:
    consumer.assign([TopicPartition(topic, partition, start)])
    letters: list[DeadLetter] = []
    end = start + count
    while True:
        message = consumer.poll(timeout_s)
        if message is None:
            break
        if message.error() is not None:
            continue
        offset = message.offset() or 0
        if offset >= end:
            break
        raw_key = message.key()
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
        letters.append(
            DeadLetter(
                topic,
                partition,
                offset,
                key,
                message.value(),
                [(k, v or b"") for k, v in cast("list[tuple[str, bytes]]", message.headers() or [])],
                message.timestamp()[1],
            )
        )
        if offset + 1 >= end:
            break
    return letters


async def mark_redriven(db: Database, service: str, letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    done = await RedriveLog(db).redriven(service)
    return [
        DeadLetter(
            d.topic, d.partition, d.offset, d.key, d.value, d.headers, d.timestamp_ms, (d.partition, d.offset) in done
        )
        for d in letters
    ]


async def list_dead_letters(
    bootstrap_servers: Brokers,
    db: Database,
    service: str,
    topic: str | None = None,
    *,
    after: tuple[int, int] | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """``topic``: the service's DLQ if it is not ``hookstream.<service>.dlq`` (the normalizer's is a contract
    topic); ``after`` and ``limit``: one page (see ``read_dead_letters``)."""
    topic = topic or RetryPolicy(service, ()).dlq_topic
    letters = await asyncio.to_thread(read_dead_letters, bootstrap_servers, topic, after=after, limit=limit)
    return await mark_redriven(db, service, letters)


def select(
    letters: list[DeadLetter],
    *,
    positions: Iterable[str] = (),
    event_ids: Iterable[str] = (),
    everything: bool = False,
    include_redriven: bool = False,
) -> list[DeadLetter]:
    """The dead letters a redrive asks for; unknown positions or ids are an error, not a silent no-op."""
    wanted_positions, wanted_ids = set(positions), set(event_ids)
    if not (everything or wanted_positions or wanted_ids):
        raise ConfigurationError("say which dead letters to redrive: --all, --position P:O or --event-id ID")
    known_positions = {d.position for d in letters}
    known_ids = {d.event_id for d in letters}
    missing = sorted(wanted_positions - known_positions) + sorted(wanted_ids - known_ids)
    if missing:
        raise ConfigurationError(f"not in the dead-letter topic: {', '.join(missing)}")
    chosen = [d for d in letters if everything or d.position in wanted_positions or d.event_id in wanted_ids]
    return [d for d in chosen if include_redriven or not d.redriven]


async def redrive(
    producer: Producer,
    db: Database,
    service: str,
    letters: list[DeadLetter],
    *,
    on_progress: Callable[[DeadLetter], None] = lambda d: None,
) -> int:
    """Send each dead letter to the service's redrive topic, then record it; return how many were sent."""
    target = RetryPolicy(service, ()).redrive_topic
    log = RedriveLog(db)
    for letter in letters:
        await producer.send(target, letter.value, key=letter.key, headers=letter.redrive_headers())
        await log.record(service, letter.partition, letter.offset)
        on_progress(letter)
    return len(letters)

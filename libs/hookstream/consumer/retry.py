"""Retry tiers and dead letters: topic names, schedule and the failure headers."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from hookstream_schemas import topics

from hookstream.consumer.records import Record
from hookstream.errors import ConfigurationError
from hookstream.kafka.headers import (
    ATTEMPT,
    ERROR_CLASS,
    ERROR_MESSAGE,
    FIRST_FAILED_AT,
    NOT_BEFORE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
)

_DELAY = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
FAILURE_HEADERS = frozenset(
    {
        ATTEMPT,
        NOT_BEFORE,
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        FIRST_FAILED_AT,
        ERROR_CLASS,
        ERROR_MESSAGE,
    }
)
MAX_ERROR_MESSAGE = 1000


def parse_delay(label: str) -> int:
    match = _DELAY.match(label.strip())
    if not match:
        raise ConfigurationError(f"retry delay {label!r} is not like 500ms, 5s, 1m or 2h")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True)
class Tier:
    label: str
    delay_ms: int
    topic: str


@dataclass(frozen=True)
class RetryPolicy:
    """``hookstream.<service>.retry.<delay>`` per tier, then ``hookstream.<service>.dlq``."""

    service: str
    tiers: tuple[Tier, ...]
    dlq: str | None = None  # a contract may name its own, e.g. webhooks.raw.v1.dlq

    @classmethod
    def from_labels(
        cls, service: str, labels: list[str] | tuple[str, ...], dlq_topic: str | None = None
    ) -> RetryPolicy:
        tiers = tuple(Tier(label, parse_delay(label), topics.retry_topic(service, label)) for label in labels)
        return cls(service, tiers, dlq_topic)

    @property
    def dlq_topic(self) -> str:
        name: str = self.dlq or topics.dlq_topic(self.service)
        return name

    @property
    def redrive_topic(self) -> str:
        name: str = topics.redrive_topic(self.service)
        return name

    @property
    def max_attempts(self) -> int:
        return len(self.tiers) + 1

    def tier_after(self, attempt: int) -> Tier | None:
        """The tier that takes a record whose attempt number ``attempt`` failed, or None: dead-letter it."""
        return self.tiers[attempt - 1] if attempt <= len(self.tiers) else None

    def tier_topics(self) -> set[str]:
        return {t.topic for t in self.tiers}


def failure_headers(
    record: Record, error: BaseException, *, attempt: int, not_before_ms: int | None, now_ms: int | None = None
) -> list[tuple[str, bytes]]:
    """The record's own headers, then where it came from and why it failed."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    topic, partition, offset = record.origin
    kept = [(k, v) for k, v in record.headers if k not in FAILURE_HEADERS]
    failure = {
        ATTEMPT: str(attempt),
        ORIGINAL_TOPIC: topic,
        ORIGINAL_PARTITION: str(partition),
        ORIGINAL_OFFSET: str(offset),
        FIRST_FAILED_AT: record.header(FIRST_FAILED_AT) or str(now_ms),
        ERROR_CLASS: f"{type(error).__module__}.{type(error).__qualname__}",
        ERROR_MESSAGE: str(error)[:MAX_ERROR_MESSAGE],
    }
    if not_before_ms is not None:
        failure[NOT_BEFORE] = str(not_before_ms)
    return kept + [(k, v.encode()) for k, v in failure.items()]

"""Consumer runtime parts without servers: commit positions, the retry schedule, failure headers, DLQ selection."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from hookstream.consumer.dlq import REDRIVEN_FROM, DeadLetter, select
from hookstream.consumer.idempotency import idempotency_key
from hookstream.consumer.offsets import PartitionOffsets
from hookstream.consumer.outcomes import Outcome, Outcomes, is_retriable
from hookstream.consumer.parking import ParkedKeys
from hookstream.consumer.records import Record
from hookstream.consumer.retry import RetryPolicy, failure_headers, parse_delay
from hookstream.consumer.runtime import ConsumerSettings
from hookstream.errors import ConfigurationError, PermanentError, RetriableError
from hookstream.kafka.headers import ATTEMPT, ERROR_CLASS, EVENT_ID, FIRST_FAILED_AT, NOT_BEFORE, ORIGINAL_OFFSET
from hookstream.sensors import Sensor


def test_commit_position_never_passes_unfinished_work() -> None:
    offsets = PartitionOffsets()
    assert offsets.committable() is None
    for o in (10, 11, 12, 13):
        offsets.add(o)
    offsets.done(12)
    offsets.done(11)
    assert offsets.committable() == 10  # 10 still running: 11 and 12 are done but not committable
    offsets.done(10)
    assert offsets.committable() == 13
    offsets.done(13)
    assert offsets.committable() == 14
    assert offsets.in_flight == 0


def test_retry_schedule_and_topic_names() -> None:
    policy = RetryPolicy.from_labels("fulfillment", ["5s", "1m", "10m"])
    assert [t.topic for t in policy.tiers] == [
        "hookstream.fulfillment.retry.5s",
        "hookstream.fulfillment.retry.1m",
        "hookstream.fulfillment.retry.10m",
    ]
    assert policy.dlq_topic == "hookstream.fulfillment.dlq"
    assert policy.max_attempts == 4
    assert [policy.tier_after(a).delay_ms for a in (1, 2, 3)] == [5_000, 60_000, 600_000]  # type: ignore[union-attr]
    assert policy.tier_after(4) is None
    assert parse_delay("250ms") == 250
    assert parse_delay("2h") == 7_200_000
    with pytest.raises(ConfigurationError, match="like 500ms"):
        parse_delay("5 minutes")
    assert ConsumerSettings(retry_delays="1s, 30s").retry_delays == ["1s", "30s"]  # type: ignore[arg-type]


def test_failure_headers_keep_the_origin_and_first_failure_across_tiers() -> None:
    record = Record("orders", 3, 42, "shopify:1", b"v", [(EVENT_ID, b"e1")], 0)
    first = failure_headers(record, RetriableError("partner down"), attempt=1, not_before_ms=5_000, now_ms=1_000)
    retried = Record("hookstream.x.retry.5s", 0, 7, "shopify:1", b"v", first, 0)
    assert retried.attempt == 2
    assert retried.origin == ("orders", 3, 42)
    assert retried.event_id == "e1"
    second = dict(failure_headers(retried, TimeoutError("slow"), attempt=2, not_before_ms=None, now_ms=9_000))
    assert second[ATTEMPT] == b"2"
    assert second[ORIGINAL_OFFSET] == b"42"
    assert second[FIRST_FAILED_AT] == b"1000"
    assert second[ERROR_CLASS] == b"builtins.TimeoutError"
    assert NOT_BEFORE not in second
    assert [k for k, _ in failure_headers(retried, TimeoutError(), attempt=2, not_before_ms=1)].count(ATTEMPT) == 1


def test_errors_carry_their_policy() -> None:
    assert is_retriable(RetriableError("x"))
    assert not is_retriable(PermanentError("x"))
    assert is_retriable(KeyError("unexpected bugs get the retry tiers before the DLQ"))


def test_dlq_selection_is_explicit() -> None:
    letters = [
        DeadLetter("d", 0, 0, "k", b"", [(EVENT_ID, b"a")], 0),
        DeadLetter("d", 0, 1, "k", b"", [(EVENT_ID, b"b")], 0, redriven=True),
        DeadLetter("d", 1, 0, "k", b"", [(EVENT_ID, b"c")], 0),
    ]
    assert [d.event_id for d in select(letters, everything=True)] == ["a", "c"]
    assert [d.event_id for d in select(letters, everything=True, include_redriven=True)] == ["a", "b", "c"]
    assert [d.event_id for d in select(letters, positions=["1:0"], event_ids=["a"])] == ["a", "c"]
    with pytest.raises(ConfigurationError, match="say which"):
        select(letters)
    with pytest.raises(ConfigurationError, match="9:9, zz"):
        select(letters, positions=["9:9"], event_ids=["zz"])
    headers = dict(letters[0].redrive_headers())
    assert headers[REDRIVEN_FROM] == b"d:0:0"
    assert ATTEMPT not in headers


def test_idempotency_key_is_stable_and_short() -> None:
    key = idempotency_key("delivery", "evt_1", "partner-a")
    assert key == idempotency_key("delivery", "evt_1", "partner-a") != idempotency_key("delivery", "evt_2", "partner-a")
    assert len(key) <= 64


async def test_a_failing_dead_letter_hook_does_not_stop_the_consumer() -> None:
    """The dead letter is written first; telling of it (the delivery's alert) failing is logged only."""
    sent: list[str] = []
    told: list[str] = []

    class Producer:
        async def send(self, topic: str, value: bytes | None, **_: object) -> None:
            sent.append(topic)

    async def handler(record: Record) -> None:
        raise PermanentError("refused")

    async def hook(record: Record, error: BaseException) -> None:
        told.append(record.event_id)
        raise RuntimeError("the alerts topic is gone")

    outcomes = Outcomes(
        "svc",
        handler,
        policy=RetryPolicy.from_labels("svc", ["1s"]),
        parking=cast(ParkedKeys, None),  # not reached: a permanent error parks nothing
        producer=cast(Any, Producer()),
        sensors=Sensor(),
        retry_jitter=0,
        infra_backoff_max_ms=10,
        on_dead_lettered=hook,
        clock=time.time,
    )
    record = Record("in", 0, 5, "k", b"v", [(EVENT_ID, b"e1")])
    assert await outcomes.attempt(record, block_key=False) is Outcome.DEAD_LETTERED
    assert (sent, told) == (["hookstream.svc.dlq"], ["e1"])

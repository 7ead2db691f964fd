"""Riding out a server that went away, without servers: what counts as "away", saying so once, the
handler retried in place, and stopping a background task that had already failed."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, UnknownMemberIdError
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException
from hookstream.consumer.outcomes import Outcome, Outcomes
from hookstream.consumer.parking import ParkedKeys
from hookstream.consumer.records import Record
from hookstream.consumer.retry import RetryPolicy
from hookstream.errors import BrokerUnavailable, DeliveryFailed, PermanentError, RetriableError
from hookstream.kafka.headers import EVENT_ID
from hookstream.lifecycle import cancel
from hookstream.outage import Outage, unavailable
from hookstream.sensors import Sensor
from psycopg_pool import PoolTimeout


def _sqlstate(code: str) -> psycopg.Error:
    error: psycopg.Error = psycopg.errors.lookup(code)("x")
    return error


def test_which_errors_mean_a_server_is_away() -> None:
    assert unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert unavailable(PoolTimeout("couldn't get a connection after 30 s"))
    assert unavailable(_sqlstate("57P01"))  # admin shutdown
    assert unavailable(_sqlstate("57P03"))  # the database system is starting up (crash recovery)
    assert unavailable(_sqlstate("08006"))
    assert not unavailable(_sqlstate("57014"))  # a statement timeout: this record's query
    assert not unavailable(_sqlstate("40P01"))  # a deadlock: the record's own retry tiers
    assert unavailable(BrokerUnavailable("no answer"))
    assert unavailable(DeliveryFailed("message timed out", retriable=True))
    assert not unavailable(DeliveryFailed("record too large", retriable=False))
    assert unavailable(KafkaConnectionError())
    assert not unavailable(UnknownMemberIdError())
    assert unavailable(KafkaException(ConfluentError(ConfluentError._ALL_BROKERS_DOWN)))
    assert not unavailable(KafkaException(ConfluentError(ConfluentError.TOPIC_AUTHORIZATION_FAILED)))
    assert not unavailable(RetriableError("the partner answered 503"))  # a partner, not our servers
    assert not unavailable(KeyError("a bug"))


async def test_an_outage_is_told_once_when_it_begins_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("svc", logging.getLogger("test.outage"), backoff_min_ms=1, backoff_max_ms=2)
    failures = iter([psycopg.OperationalError("down")] * 5)

    async def step() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "done"

    with caplog.at_level(logging.INFO, "test.outage"):
        assert await asyncio.gather(outage.retry(step), outage.retry(step)) == ["done", "done"]
    told = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in told] == ["WARNING", "INFO"], told
    assert "unavailable" in told[0][1]
    assert "available again" in told[1][1]
    assert not outage.ongoing


async def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    outage = Outage("svc", logging.getLogger("test.outage"), backoff_min_ms=1)
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("bad record")

    with pytest.raises(PermanentError):
        await outage.retry(step)
    assert calls == 1


def _outcomes(handler: Any, sent: list[str]) -> Outcomes:
    class Producer:
        async def send(self, topic: str, value: bytes | None, **_: object) -> None:
            sent.append(topic)

    class Parking:
        async def block(self, key: str, record: Record) -> None:
            sent.append("blocked")

    return Outcomes(
        "svc",
        handler,
        policy=RetryPolicy.from_labels("svc", ["1s"]),
        parking=cast(ParkedKeys, Parking()),
        producer=cast(Any, Producer()),
        sensors=Sensor(),
        retry_jitter=0,
        infra_backoff_max_ms=5,
        clock=time.time,
    )


async def test_a_handler_that_meets_a_database_restart_is_retried_in_place_not_sent_to_a_tier() -> None:
    """A record is not at fault when PostgreSQL restarts: it must not spend its retry tiers (and end
    in the DLQ after a long outage); it is tried again until the database is back."""
    sent: list[str] = []
    attempts = 0

    async def handler(record: Record) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise psycopg.OperationalError("terminating connection due to administrator command")

    record = Record("in", 0, 5, "k", b"v", [(EVENT_ID, b"e1")])
    assert await _outcomes(handler, sent).attempt(record, block_key=True) is Outcome.DONE
    assert (attempts, sent) == (4, [])


async def test_a_partner_failure_still_goes_to_its_retry_tier() -> None:
    sent: list[str] = []

    async def handler(record: Record) -> None:
        raise RetriableError("the partner answered 503")

    record = Record("in", 0, 5, "k", b"v", [(EVENT_ID, b"e1")])
    assert await _outcomes(handler, sent).attempt(record, block_key=True) is Outcome.RETRYING
    assert sent == ["blocked", "hookstream.svc.retry.1s"]


async def test_stopping_a_task_that_already_failed_does_not_raise_its_failure() -> None:
    """The outbox relay's LISTEN task dies with the database connection; releasing it must not raise
    that error again (it stopped the whole normalizer when PostgreSQL restarted)."""

    async def listen() -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    task = asyncio.create_task(listen())
    await asyncio.sleep(0)
    failure = await cancel(task)
    assert isinstance(failure, psycopg.OperationalError)
    assert await cancel(asyncio.create_task(asyncio.sleep(10))) is None
    assert await cancel(None) is None

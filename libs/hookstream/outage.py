"""Riding out a server that went away (PostgreSQL restarting, the broker failing over).

``unavailable(exc)`` tells an error that says a server is away from one that says the request was
wrong; ``Outage`` retries with backoff and says once, at warning level, that a server went away and
once that it is back, however many steps of however many tasks failed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException

from hookstream.errors import BrokerUnavailable, DatabaseUnavailable, DeliveryFailed, ProducerQueueFull

T = TypeVar("T")

# A server shutting down, crashed, still recovering, or out of connection slots: the connection
# failed, not the statement. Everything else (a deadlock, a statement timeout, bad data) is the record's.
_SERVER_AWAY = {"57P01", "57P02", "57P03", "53300"}
_BROKERS_AWAY = {
    ConfluentError._TRANSPORT,
    ConfluentError._ALL_BROKERS_DOWN,
    ConfluentError._TIMED_OUT,
    ConfluentError._MSG_TIMED_OUT,
}


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says PostgreSQL or Kafka is away (trying the same step later can succeed,
    and the record or request at hand is not at fault)."""
    if isinstance(exc, (DatabaseUnavailable, BrokerUnavailable, ProducerQueueFull)):
        return True
    if isinstance(exc, DeliveryFailed):
        return exc.retriable
    if isinstance(exc, psycopg.OperationalError):  # PoolTimeout is one too
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in _SERVER_AWAY
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        if not isinstance(error, ConfluentError):
            return False
        return bool(error.retriable()) or error.code() in _BROKERS_AWAY
    return False


class Outage:
    """One per component (a consumer, a relay): ``await outage.retry(step, *args)`` runs ``step``
    until it succeeds, backing off between attempts while its errors say a server is away; any
    other error is raised at once."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        backoff_min_ms: int = 100,
        backoff_max_ms: int = 5_000,
        **extra: Any,
    ) -> None:
        self.what = what
        self.log = logger
        self.backoff_min_s = backoff_min_ms / 1000
        self.backoff_max_s = backoff_max_ms / 1000
        self.extra = extra
        self.since: float | None = None  # monotonic time the current outage began

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, step: str = "") -> None:
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning(
                f"{self.what}: a server is unavailable; retrying until it is back",
                extra={**self.extra, "step": step, "error": _one_line(exc)},
            )
        else:
            extra = {**self.extra, "step": step, "error": _one_line(exc)}
            self.log.debug(f"{self.what}: still unavailable", extra=extra)

    def recovered(self) -> None:
        if self.since is not None:
            self.log.info(f"{self.what}: available again after {time.monotonic() - self.since:.1f} s", extra=self.extra)
            self.since = None

    async def retry(
        self, step: Callable[..., Awaitable[T]], *args: Any, when: Callable[[BaseException], bool] = unavailable
    ) -> T:
        """``when``: which errors mean "try again" (by default, ``unavailable`` ones)."""
        delay_s = self.backoff_min_s
        while True:
            try:
                result = await step(*args)
            except Exception as exc:
                if not when(exc):
                    raise
                self.failed(exc, getattr(step, "__name__", "?"))
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self.backoff_max_s)
                continue
            self.recovered()
            return result


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

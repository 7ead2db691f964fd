"""What happens to one record: the handler runs, and its outcome is done, a retry tier or the DLQ.

While a record waits in a tier, later records of its key are parked in Postgres and released in
order once it succeeds or is dead-lettered (``parking.py``). Kafka and Postgres steps are retried
in place with backoff: a record is not finished until its outcome is durable. So is a handler that
failed because one of them is away (``outage.unavailable``): the record is not at fault, and a
database restart must not spend its retry tiers or send it to the DLQ.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

import psycopg
from aiokafka.errors import KafkaError

from hookstream.consumer.parking import IS_THE_BLOCKER, NOT_THE_BLOCKER, Parked, ParkedKeys
from hookstream.consumer.records import Record
from hookstream.consumer.retry import RetryPolicy, Tier, failure_headers
from hookstream.errors import HookstreamError, MigrationError
from hookstream.kafka import Producer
from hookstream.outage import Outage
from hookstream.sensors import Sensor

log = logging.getLogger("hookstream.consumer")

Handler = Callable[[Record], Awaitable[None]]
DeadLetterHook = Callable[[Record, BaseException], Awaitable[None]]
T = TypeVar("T")


class Outcome(Enum):
    DONE = "done"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"


def is_retriable(exc: BaseException) -> bool:
    """Our errors say so themselves; anything unexpected is given the retry tiers before the DLQ."""
    return bool(exc.retriable) if isinstance(exc, HookstreamError) else True


class Outcomes:
    def __init__(
        self,
        service: str,
        handler: Handler,
        *,
        policy: RetryPolicy,
        parking: ParkedKeys,
        producer: Producer,
        sensors: Sensor,
        retry_jitter: float,
        infra_backoff_max_ms: int,
        on_dead_lettered: DeadLetterHook | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.service = service
        self.handler = handler
        self.policy = policy
        self.parking = parking
        self.producer = producer
        self.sensors = sensors
        self.retry_jitter = retry_jitter
        self.infra_backoff_max_ms = infra_backoff_max_ms
        self.on_dead_lettered = on_dead_lettered
        self.clock = clock
        self.blocked: set[str] = set()  # keys with a record in a retry tier, as far as this instance knows
        self.outage = Outage(service, log, backoff_max_ms=infra_backoff_max_ms, service=service)

    async def load_blocked(self, input_topic: str, partitions: list[int]) -> None:
        self.blocked |= await self.infra(self.parking.blocked_keys, input_topic, partitions)

    async def process_input(self, record: Record) -> None:
        key = record.ordering_key
        from_redrive = record.topic == self.policy.redrive_topic
        if key in self.blocked and not from_redrive:
            parked = await self.infra(self.parking.park_if_blocked, key, record)
            if parked is IS_THE_BLOCKER:
                # The blocking record itself, delivered again: try it now; success releases its key.
                outcome = await self.attempt(record, block_key=False)
                if outcome is not Outcome.RETRYING:
                    await self.release(key, record.event_id)
                return
            if parked:
                self.sensors.on_record_parked(self.service, record)
                return
            self.blocked.discard(key)
        await self.attempt(record, block_key=not from_redrive)

    async def process_retry(self, record: Record) -> None:
        outcome = await self.attempt(record, block_key=False)
        if outcome is not Outcome.RETRYING:
            await self.release(record.ordering_key, record.event_id)

    async def release(self, key: str, blocker_event_id: str) -> None:
        """The blocker is done (succeeded or dead-lettered): run what was parked behind it, oldest first."""
        while True:
            parked = await self.infra(self.parking.next_released, key, blocker_event_id)
            if parked is NOT_THE_BLOCKER:
                return
            if parked is None:
                self.blocked.discard(key)
                return
            assert isinstance(parked, Parked)
            outcome = await self.attempt(parked.record, block_key=False, parked=parked)
            await self.infra(self.parking.unpark, key, parked)
            self.sensors.on_record_released(self.service, parked.record)
            if outcome is Outcome.RETRYING:
                return  # it blocks the key now; its own success continues the release

    async def attempt(self, record: Record, *, block_key: bool, parked: Parked | None = None) -> Outcome:
        started = time.perf_counter()
        self.sensors.on_record_started(self.service, record)
        try:
            await self.outage.retry(self.handler, record)
        except asyncio.CancelledError:
            self.sensors.on_record_abandoned(self.service, record, None)
            raise
        except psycopg.ProgrammingError as exc:
            self.sensors.on_record_abandoned(self.service, record, exc)
            # A missing table or column, a statement the database refuses to parse, a missing grant: the
            # deployment is wrong (a migration not applied), not this record. Retrying and then
            # dead-lettering would file every record as bad; stopping keeps them until it is fixed.
            raise MigrationError(
                f"{self.service}: the database refused a statement ({type(exc).__name__}: {exc}); are its"
                " migrations applied? (`hookstream setup`, or start without --no-migrate)"
            ) from exc
        except Exception as exc:
            tier = self.policy.tier_after(record.attempt) if is_retriable(exc) else None
            if tier is None:
                await self.infra(self._dead_letter, record, exc)
                if self.on_dead_lettered is not None:
                    try:
                        await self.infra(self.on_dead_lettered, record, exc)
                    except Exception as failed:  # the dead letter is written: telling of it must not stop us
                        log.error(
                            "dead-letter hook failed",
                            extra={"service": self.service, "event_id": record.event_id, "error": repr(failed)},
                        )
                self.sensors.on_record_dead_lettered(self.service, record, exc)
                log.warning(
                    "dead-lettered",
                    extra={"service": self.service, "event_id": record.event_id, "error": repr(exc)},
                )
                return Outcome.DEAD_LETTERED
            # Block first: if we die before the record reaches its tier, its redelivery finds
            # itself named as the blocker and is tried again instead of waiting behind itself.
            if block_key:
                await self.infra(self.parking.block, record.ordering_key, record)
                self.blocked.add(record.ordering_key)
            elif parked is not None:
                await self.infra(self.parking.reblock, record.ordering_key, parked)
            await self.infra(self._send_to_tier, record, exc, tier)
            self.sensors.on_record_retried(self.service, record, tier.label, exc)
            return Outcome.RETRYING
        self.sensors.on_record_handled(self.service, record, time.perf_counter() - started)
        return Outcome.DONE

    async def _send_to_tier(self, record: Record, exc: BaseException, tier: Tier) -> None:
        now_ms = int(self.clock() * 1000)
        jitter = self.retry_jitter
        tier_delay_ms = tier.delay_ms * (1 + random.uniform(-jitter, jitter)) if jitter else tier.delay_ms
        delay_ms = int(max(tier_delay_ms, getattr(exc, "retry_after_ms", None) or 0))
        headers = failure_headers(record, exc, attempt=record.attempt, not_before_ms=now_ms + delay_ms)
        await self.producer.send(tier.topic, record.value, key=record.key, headers=headers)

    async def _dead_letter(self, record: Record, exc: BaseException) -> None:
        headers = failure_headers(record, exc, attempt=record.attempt, not_before_ms=None)
        await self.producer.send(self.policy.dlq_topic, record.value, key=record.key, headers=headers)

    async def infra(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a Kafka or Postgres step until it succeeds; the record is not done until it has."""
        return await self.outage.retry(operation, *args, when=_infrastructure_failed)


def _infrastructure_failed(exc: BaseException) -> bool:
    """The runtime's own Kafka and Postgres steps are tried again on any failure of theirs: they carry no
    record's fault, and a record is not finished until its outcome is durable."""
    if isinstance(exc, HookstreamError):
        return exc.retriable
    return isinstance(exc, (psycopg.OperationalError, KafkaError))

"""The consumer runtime every effect-producing service runs on.

- aiokafka consumer in group ``hookstream.<service>`` with manual commits: a partition's offset
  is committed only up to its lowest unfinished record (at-least-once), also on rebalance and stop.
- Concurrency across keys, strict order within a key: per partition, up to
  ``keys_in_flight_per_partition`` keys are worked on at once, each key's records one after another.
- A failed record goes to the next retry tier (``hookstream.<service>.retry.<delay>``) or, when
  its error is permanent or its attempts are spent, to ``hookstream.<service>.dlq``.
- While a record waits in a tier, later records of its key are parked in Postgres and released in
  order once it succeeds or is dead-lettered (``parking.py``). Other keys keep flowing.
- A tier partition waits for its head record's not-before time in its own task, so one tier's
  delay never holds up another partition.
- Infrastructure failures (Kafka or Postgres away) are retried with backoff and never commit past
  the record; an unexpected failure stops the service with the error rather than skip a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from psycopg_pool import PoolTimeout
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookstream.consumer.metrics import ConsumerMetrics
from hookstream.consumer.offsets import PartitionOffsets
from hookstream.consumer.parking import IS_THE_BLOCKER, NOT_THE_BLOCKER, Parked, ParkedKeys, PostgresParkedKeys
from hookstream.consumer.records import Record
from hookstream.consumer.retry import RetryPolicy, Tier, failure_headers
from hookstream.db import Database
from hookstream.errors import HookstreamError
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.kafka.headers import NOT_BEFORE
from hookstream.lifecycle import Lifecycle
from hookstream.settings import CommaList, KafkaSettings

log = logging.getLogger("hookstream.consumer")

Handler = Callable[[Record], Awaitable[None]]
T = TypeVar("T")


class ConsumerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_CONSUMER_", extra="ignore")

    keys_in_flight_per_partition: int = 16
    retry_delays: CommaList = ["5s", "1m", "10m"]
    retry_jitter: float = 0.0  # 0.1: each tier delay varies by ±10 %, so retries of an outage do not arrive in step
    max_buffered_per_partition: int = 2_000
    max_poll_records: int = 500
    commit_interval_ms: int = 1_000
    drain_timeout_ms: int = 30_000
    session_timeout_ms: int = 10_000  # how long a killed instance holds its partitions
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    infra_backoff_max_ms: int = 5_000
    retry_retention_ms: int = 7 * 24 * 3600 * 1000
    dlq_retention_ms: int = 30 * 24 * 3600 * 1000


class Outcome(Enum):
    DONE = "done"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"


def is_retriable(exc: BaseException) -> bool:
    """Our errors say so themselves; anything unexpected is given the retry tiers before the DLQ."""
    return bool(exc.retriable) if isinstance(exc, HookstreamError) else True


_INFRA_ERRORS = (psycopg.OperationalError, PoolTimeout, KafkaError)


class _PartitionWork:
    """The records of one assigned partition that are fetched but not finished."""

    def __init__(self, tp: TopicPartition, *, delayed: bool, keys_in_flight: int) -> None:
        self.tp = tp
        self.delayed = delayed
        self.keys_in_flight = keys_in_flight
        self.offsets = PartitionOffsets()
        self.committed: int | None = None
        self.closing = False
        self.paused = False
        self.queues: dict[str, deque[Record]] = {}
        self.waiting_keys: deque[str] = deque()
        self.tasks: set[asyncio.Task[None]] = set()
        self.active = 0  # key workers running; counted synchronously, unlike the done-callbacks of `tasks`
        self.sleeper: asyncio.Task[None] | None = None


class ConsumerService(Lifecycle):
    """``async with ConsumerService(...)`` or ``start()``/``stop()``; ``wait()`` until it stops or fails."""

    def __init__(
        self,
        service: str,
        input_topic: str,
        handler: Handler,
        *,
        bootstrap_servers: str,
        db: Database,
        settings: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        parking: ParkedKeys | None = None,
        dlq_topic: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.group_id = f"hookstream.{service}"
        self.input_topic = input_topic
        self.handler = handler
        self.bootstrap_servers = bootstrap_servers
        self.db = db
        self.settings = settings or ConsumerSettings()
        self.kafka = kafka or KafkaSettings(client_id=f"hookstream-{service}")
        self.policy = RetryPolicy.from_labels(service, self.settings.retry_delays, dlq_topic)
        self.parking: ParkedKeys = parking or PostgresParkedKeys(db, service)
        self.clock = clock
        self.metrics = ConsumerMetrics()
        self.producer = Producer(bootstrap_servers, self.kafka)
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[TopicPartition, _PartitionWork] = {}
        self._blocked: set[str] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._failure: BaseException | None = None

    # lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            return
        await asyncio.to_thread(self._ensure_topics)
        await self.producer.start()
        topics = [self.input_topic, self.policy.redrive_topic, *sorted(self.policy.tier_topics())]
        s = self.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=self.kafka.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=s.max_poll_records,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
        )
        self._consumer.subscribe(topics, listener=_Rebalance(self))
        await self._consumer.start()
        self._stopping = False
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"consumer-{self.service}")
        log.info("consumer started", extra={"service": self.service, "topics": topics})

    def _ensure_topics(self) -> None:
        admin = TopicAdmin(self.bootstrap_servers)
        partitions = admin.partition_count(self.input_topic) or self.kafka.default_partitions
        s = self.settings
        specs = [TopicSpec(t, partitions, s.retry_retention_ms) for t in sorted(self.policy.tier_topics())]
        specs.append(TopicSpec(self.policy.redrive_topic, partitions, s.retry_retention_ms))
        specs.append(TopicSpec(self.policy.dlq_topic, partitions, s.dlq_retention_ms))
        if not admin.partition_count(self.input_topic):
            specs.append(TopicSpec(self.input_topic, partitions, self.kafka.default_retention_ms))
        admin.ensure_topics(specs)

    async def stop(self) -> None:
        """Stop fetching, finish the records being worked on (up to ``drain_timeout_ms``), commit, close."""
        if self._runner is None:
            return
        self._stopping = True
        runner = self._runner
        try:
            await asyncio.wait_for(asyncio.shield(runner), 2.0)
        except TimeoutError:
            # Stuck in a rebalance (waiting for a dead member's session to expire): leave it.
            runner.cancel()
        except Exception:  # noqa: S110 - the error was logged by the runner and is raised by wait()
            pass
        with contextlib.suppress(BaseException):
            await runner
        self._runner = None
        await self._close_partitions(list(self._partitions))
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        await self.producer.stop()
        log.info("consumer stopped", extra={"service": self.service, **self.metrics.snapshot()})

    async def wait(self) -> None:
        """Return when the service stops; raise the error that stopped it, if one did."""
        if self._runner is not None:
            await asyncio.shield(self._runner)
        if self._failure is not None:
            raise self._failure

    # the fetch loop

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        s = self.settings
        next_commit = time.monotonic() + s.commit_interval_ms / 1000
        try:
            while not self._stopping and self._failure is None:
                batches = await consumer.getmany(timeout_ms=100, max_records=s.max_poll_records)
                for tp, messages in batches.items():
                    work = self._partitions.get(tp)
                    if work is None or work.closing:
                        continue
                    for message in messages:
                        self._submit(work, _to_record(message))
                self._flow_control(consumer)
                if time.monotonic() >= next_commit:
                    await self._commit(list(self._partitions.values()))
                    self._update_lag(consumer)
                    next_commit = time.monotonic() + s.commit_interval_ms / 1000
        except Exception as exc:
            self._failure = self._failure or exc
        if self._failure is not None:
            log.error("consumer stopped by an error", extra={"service": self.service, "error": repr(self._failure)})
            raise self._failure

    def _flow_control(self, consumer: AIOKafkaConsumer) -> None:
        limit = self.settings.max_buffered_per_partition
        for work in self._partitions.values():
            backlog = work.offsets.in_flight
            if not work.paused and backlog >= limit:
                consumer.pause(work.tp)
                work.paused = True
            elif work.paused and backlog < limit // 2:
                consumer.resume(work.tp)
                work.paused = False

    async def _commit(self, works: list[_PartitionWork]) -> None:
        assert self._consumer is not None
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for work in works:
            position = work.offsets.committable()
            if position is not None and position != work.committed:
                offsets[work.tp] = OffsetAndMetadata(position, "")
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group is rebalancing; the new owner resumes from the last commit (at-least-once).
            log.warning("commit skipped during rebalance", extra={"service": self.service, "error": str(exc)})
            return
        for work in works:
            if work.tp in offsets:
                work.committed = offsets[work.tp].offset

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for work in self._partitions.values():
            if work.tp.topic != self.input_topic:
                continue
            highwater = consumer.highwater(work.tp)
            position = work.offsets.committable()
            if highwater is not None and position is not None:
                lag += max(0, highwater - position)
        self.metrics.lag = lag

    # rebalance

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        tiers = self.policy.tier_topics()
        keys_in_flight = self.settings.keys_in_flight_per_partition
        for tp in assigned:
            self._partitions[tp] = _PartitionWork(tp, delayed=tp.topic in tiers, keys_in_flight=keys_in_flight)
        inputs = sorted(tp.partition for tp in assigned if tp.topic == self.input_topic)
        if inputs:
            self._blocked |= await self._infra(self.parking.blocked_keys, self.input_topic, inputs)

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        await self._close_partitions([tp for tp in revoked if tp in self._partitions])

    async def _close_partitions(self, tps: list[TopicPartition]) -> None:
        """Let each partition finish the records it is working on (not the queued ones), then commit."""
        works = [self._partitions[tp] for tp in tps if tp in self._partitions]
        tasks: set[asyncio.Task[None]] = set()
        for work in works:
            work.closing = True
            if work.sleeper is not None:
                work.sleeper.cancel()
            tasks |= work.tasks
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout_ms / 1000)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._consumer is not None and works:
            await self._commit(works)
        for work in works:
            self._partitions.pop(work.tp, None)

    # scheduling within a partition

    def _submit(self, work: _PartitionWork, record: Record) -> None:
        work.offsets.add(record.offset)
        key = "" if work.delayed else record.ordering_key  # a tier partition is one queue, in not-before order
        queue = work.queues.get(key)
        if queue is not None:
            queue.append(record)
            return
        work.queues[key] = deque([record])
        if work.active < work.keys_in_flight:
            self._spawn(work, key)
        else:
            work.waiting_keys.append(key)

    def _spawn(self, work: _PartitionWork, key: str) -> None:
        work.active += 1
        task = asyncio.get_running_loop().create_task(self._work_key(work, key))
        work.tasks.add(task)
        task.add_done_callback(work.tasks.discard)

    async def _work_key(self, work: _PartitionWork, key: str) -> None:
        try:
            queue = work.queues[key]
            while queue and not work.closing:
                record = queue[0]
                if work.delayed:
                    if not await self._until_not_before(work, record):
                        break
                    await self._process_retry(record)
                else:
                    await self._process_input(record)
                queue.popleft()
                work.offsets.done(record.offset)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a non-retriable infrastructure error: stop, never skip
            log.exception("record processing failed; stopping", extra={"service": self.service})
            self._failure = self._failure or exc
        finally:
            work.active -= 1
            if not work.closing and self._failure is None:
                work.queues.pop(key, None)
                if work.waiting_keys:
                    self._spawn(work, work.waiting_keys.popleft())

    async def _until_not_before(self, work: _PartitionWork, record: Record) -> bool:
        """Sleep until the record is due; False if the partition was closed meanwhile."""
        not_before_ms = int(record.header(NOT_BEFORE) or 0)
        delay_s = not_before_ms / 1000 - self.clock()
        if delay_s <= 0:
            return True
        work.sleeper = asyncio.get_running_loop().create_task(asyncio.sleep(delay_s))
        try:
            await work.sleeper
        except asyncio.CancelledError:
            if not work.closing:
                raise
        finally:
            work.sleeper = None
        return not work.closing

    # what happens to one record

    async def _process_input(self, record: Record) -> None:
        key = record.ordering_key
        from_redrive = record.topic == self.policy.redrive_topic
        if key in self._blocked and not from_redrive:
            parked = await self._infra(self.parking.park_if_blocked, key, record)
            if parked is IS_THE_BLOCKER:
                # The blocking record itself, delivered again: try it now; success releases its key.
                outcome = await self._attempt(record, block_key=False)
                if outcome is not Outcome.RETRYING:
                    await self._release(key, record.event_id)
                return
            if parked:
                self.metrics.parked += 1
                return
            self._blocked.discard(key)
        await self._attempt(record, block_key=not from_redrive)

    async def _process_retry(self, record: Record) -> None:
        outcome = await self._attempt(record, block_key=False)
        if outcome is not Outcome.RETRYING:
            await self._release(record.ordering_key, record.event_id)

    async def _release(self, key: str, blocker_event_id: str) -> None:
        """The blocker is done (succeeded or dead-lettered): run what was parked behind it, oldest first."""
        while True:
            parked = await self._infra(self.parking.next_released, key, blocker_event_id)
            if parked is NOT_THE_BLOCKER:
                return
            if parked is None:
                self._blocked.discard(key)
                return
            assert isinstance(parked, Parked)
            outcome = await self._attempt(parked.record, block_key=False, parked=parked)
            await self._infra(self.parking.unpark, key, parked)
            self.metrics.released += 1
            if outcome is Outcome.RETRYING:
                return  # it blocks the key now; its own success continues the release

    async def _attempt(self, record: Record, *, block_key: bool, parked: Parked | None = None) -> Outcome:
        started = time.perf_counter()
        try:
            await self.handler(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            tier = self.policy.tier_after(record.attempt) if is_retriable(exc) else None
            if tier is None:
                await self._infra(self._dead_letter, record, exc)
                self.metrics.dead_lettered += 1
                log.warning(
                    "dead-lettered",
                    extra={"service": self.service, "event_id": record.event_id, "error": repr(exc)},
                )
                return Outcome.DEAD_LETTERED
            # Block first: if we die before the record reaches its tier, its redelivery finds
            # itself named as the blocker and is tried again instead of waiting behind itself.
            if block_key:
                await self._infra(self.parking.block, record.ordering_key, record)
                self._blocked.add(record.ordering_key)
            elif parked is not None:
                await self._infra(self.parking.reblock, record.ordering_key, parked)
            await self._infra(self._send_to_tier, record, exc, tier)
            self.metrics.retried += 1
            return Outcome.RETRYING
        self.metrics.processed += 1
        self.metrics.observe(time.perf_counter() - started)
        return Outcome.DONE

    async def _send_to_tier(self, record: Record, exc: BaseException, tier: Tier) -> None:
        now_ms = int(self.clock() * 1000)
        jitter = self.settings.retry_jitter
        tier_delay_ms = tier.delay_ms * (1 + random.uniform(-jitter, jitter)) if jitter else tier.delay_ms
        delay_ms = int(max(tier_delay_ms, getattr(exc, "retry_after_ms", None) or 0))
        headers = failure_headers(record, exc, attempt=record.attempt, not_before_ms=now_ms + delay_ms)
        await self.producer.send(tier.topic, record.value, key=record.key, headers=headers)

    async def _dead_letter(self, record: Record, exc: BaseException) -> None:
        headers = failure_headers(record, exc, attempt=record.attempt, not_before_ms=None)
        await self.producer.send(self.policy.dlq_topic, record.value, key=record.key, headers=headers)

    async def _infra(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a Kafka or Postgres step until it succeeds; the record is not done until it has."""
        delay_s = 0.1
        while True:
            try:
                return await operation(*args)
            except (*_INFRA_ERRORS, HookstreamError) as exc:
                if isinstance(exc, HookstreamError) and not exc.retriable:
                    raise
                log.warning(
                    "infrastructure step failed; retrying",
                    extra={"service": self.service, "step": getattr(operation, "__name__", "?"), "error": str(exc)},
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self.settings.infra_backoff_max_ms / 1000)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: ConsumerService) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runtime._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runtime._assigned(assigned)


def _to_record(message: ConsumerRecord[Any, Any]) -> Record:
    key = message.key.decode("utf-8", "replace") if isinstance(message.key, bytes) else message.key
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key,
        value=message.value,
        headers=[(k, v or b"") for k, v in message.headers],
        timestamp_ms=message.timestamp,
    )

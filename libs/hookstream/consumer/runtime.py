"""The consumer runtime every effect-producing service runs on: the scheduler and flow control.

- aiokafka consumer in group ``hookstream.<service>`` with manual commits: a partition's offset
  is committed only up to its lowest unfinished record (at-least-once), also on rebalance and stop.
- Concurrency across keys, strict order within a key: per partition, up to
  ``keys_in_flight_per_partition`` keys are worked on at once, each key's records one after another.
- A failed record goes to the next retry tier (``hookstream.<service>.retry.<delay>``) or, when
  its error is permanent or its attempts are spent, to ``hookstream.<service>.dlq``.
- What happens to each record (retry, DLQ, parking and its release) is ``outcomes.py``; this
  module decides when records run, pauses partitions that fall behind and commits.
- A tier partition waits for its head record's not-before time in its own task, so one tier's
  delay never holds up another partition.
- Infrastructure failures (Kafka or Postgres away, also when the handler meets them) are retried
  with backoff and never commit past the record; a commit the coordinator could not take is made at
  the next interval; an unexpected failure stops the service with the error rather than skip a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from hookstream_schemas.topics import CONTRACTS, DLQ_RETENTION_MS, RETRY_RETENTION_MS, TopicSpec, group_id
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookstream.consumer.metrics import ConsumerMetrics
from hookstream.consumer.offsets import PartitionOffsets
from hookstream.consumer.outcomes import DeadLetterHook, Handler, Outcomes
from hookstream.consumer.parking import ParkedKeys, PostgresParkedKeys
from hookstream.consumer.records import Record
from hookstream.consumer.retry import RetryPolicy
from hookstream.db import Database
from hookstream.errors import HookstreamError
from hookstream.kafka import Producer, TopicAdmin
from hookstream.kafka.headers import NOT_BEFORE
from hookstream.kafka.security import aiokafka_diagnosis, aiokafka_options
from hookstream.lifecycle import Lifecycle
from hookstream.outage import Outage
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, CommaList, KafkaConnection, KafkaSettings

log = logging.getLogger("hookstream.consumer")


class ConsumerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_CONSUMER_", extra="ignore")

    keys_in_flight_per_partition: int = 16
    retry_delays: CommaList = ["5s", "1m", "10m"]
    retry_jitter: float = 0.0  # 0.1: each tier delay varies by ±10 %, so retries of an outage do not arrive in step
    max_buffered_per_partition: int = 2_000
    max_poll_records: int = 500
    commit_interval_ms: int = 1_000
    # After a fetch that returned some records but fewer than max_poll_records, wait this long before
    # the next: records then arrive in batches of this many milliseconds' worth (one group-commit
    # transaction, one fetch response for many), which at moderate rates cuts CPU per event by about
    # a tenth and, on a busy box, latency too. The first record after a quiet spell is taken at once,
    # and a backlog (full fetches) is read without pause. 0 fetches again immediately.
    fetch_linger_ms: int = 20
    # How long the broker holds a fetch that finds nothing new. Records that arrive meanwhile answer
    # it at once, so this sets only how often an idle consumer asks (Kafka's default, 500, is twice a
    # second for every input, tier and redrive partition).
    fetch_max_wait_ms: int = 2_000
    drain_timeout_ms: int = 30_000
    session_timeout_ms: int = 10_000  # how long a killed instance holds its partitions
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    infra_backoff_max_ms: int = 5_000
    retry_retention_ms: int = RETRY_RETENTION_MS
    dlq_retention_ms: int = DLQ_RETENTION_MS


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
        bootstrap_servers: Brokers,
        db: Database,
        settings: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        parking: ParkedKeys | None = None,
        dlq_topic: str | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
        on_dead_lettered: DeadLetterHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``create_topics=False`` when the entrypoint (or a setup Job) creates ``topics()`` beforehand.
        ``on_dead_lettered`` runs once a record's dead letter is written, before the record is committed
        (so at least once: a crash in between runs it again for the redelivered record)."""
        self.service = service
        self.group_id = group_id(service)
        self.input_topic = input_topic
        self.handler = handler
        self.connection = KafkaConnection.of(bootstrap_servers)
        self.bootstrap_servers = self.connection.bootstrap_servers
        self.db = db
        self.settings = settings or ConsumerSettings()
        self.kafka = kafka or KafkaSettings(client_id=f"hookstream-{service}")
        self.policy = RetryPolicy.from_labels(service, self.settings.retry_delays, dlq_topic)
        self.parking: ParkedKeys = parking or PostgresParkedKeys(db, service)
        self.clock = clock
        self.create_topics = create_topics
        self.metrics = ConsumerMetrics()
        self.sensors = (sensors or Sensors()).with_(self.metrics)
        self.producer = Producer(self.connection, self.kafka, sensors=self.sensors)
        self.outcomes = Outcomes(
            service,
            handler,
            policy=self.policy,
            parking=self.parking,
            producer=self.producer,
            sensors=self.sensors,
            retry_jitter=self.settings.retry_jitter,
            infra_backoff_max_ms=self.settings.infra_backoff_max_ms,
            on_dead_lettered=on_dead_lettered,
            clock=clock,
        )
        self._broker = Outage(f"{service}: the group coordinator", log, service=service)
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[TopicPartition, _PartitionWork] = {}
        self._joined = False
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._failure: BaseException | None = None

    # lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            return
        if self.create_topics:
            await asyncio.to_thread(self._ensure_topics)
        await self.producer.start()
        topics = [self.input_topic, self.policy.redrive_topic, *sorted(self.policy.tier_topics())]
        s = self.settings
        security = aiokafka_options(self.connection.security)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=self.kafka.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=s.max_poll_records,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            **security,
        )
        self._consumer.subscribe(topics, listener=_Rebalance(self))
        try:
            await self._consumer.start()
        except KafkaConnectionError as exc:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
            # aiokafka says only "Unable to bootstrap"; a refused login or certificate is named instead.
            refused = await aiokafka_diagnosis(self.connection, security)
            if refused is not None:
                raise refused from exc
            raise
        self._stopping = False
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"consumer-{self.service}")
        log.info("consumer started", extra={"service": self.service, "topics": topics})

    def topics(self, partitions: int | None = None) -> list[TopicSpec]:
        """The topics this consumer owns (its retry tiers, redrive and dead-letter topics) and its input.

        The input is usually another service's output; a contract input is declared here too (as the
        contract says) so that services can start in any order instead of failing on a missing topic."""
        partitions = partitions or self.kafka.default_partitions
        s = self.settings
        # Declared only when it is a contract: another topic's partition count is not ours to state.
        specs = [c for c in CONTRACTS if c.name == self.input_topic]
        specs += [TopicSpec(t, partitions, s.retry_retention_ms) for t in sorted(self.policy.tier_topics())]
        specs.append(TopicSpec(self.policy.redrive_topic, partitions, s.retry_retention_ms))
        specs.append(TopicSpec(self.policy.dlq_topic, partitions, s.dlq_retention_ms))
        return specs

    def consumer_groups(self) -> list[tuple[str, str, str, str]]:
        """(consumer service, group id, input topic, dead-letter topic): what replay and redrive act on."""
        return [(self.service, self.group_id, self.input_topic, self.policy.dlq_topic)]

    async def ready(self) -> list[tuple[str, bool, str]]:
        """Ready once this instance has joined its group, with partitions or without: a member beyond
        the input's partition count idles as a standby, and a rollout must not wait for it to get any
        (with maxUnavailable 0 it would wait forever)."""
        name = f"consumer {self.group_id}"
        if self._runner is None or self._runner.done():
            return [(name, False, "not running")]
        if not self._joined:
            return [(name, False, "joining the group")]
        inputs = [tp for tp in self._partitions if tp.topic == self.input_topic]
        if not inputs:
            return [(name, True, f"a standby: the group's other members hold every partition of {self.input_topic}")]
        return [(name, True, f"{len(inputs)} partition(s) of {self.input_topic}")]

    def _ensure_topics(self) -> None:
        admin = TopicAdmin(self.connection)
        partitions = admin.partition_count(self.input_topic) or self.kafka.default_partitions
        specs = self.topics(partitions)
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
                # Returns as soon as records arrive; idle, the loop wakes once per commit interval.
                try:
                    batches = await consumer.getmany(timeout_ms=s.commit_interval_ms, max_records=s.max_poll_records)
                except KafkaError as exc:
                    if not exc.retriable:
                        raise
                    self._broker.failed(exc, "fetch")
                    await asyncio.sleep(s.commit_interval_ms / 1000)
                    continue
                fetched = 0
                for tp, messages in batches.items():
                    fetched += len(messages)
                    work = self._partitions.get(tp)
                    if work is None or work.closing:
                        continue
                    for message in messages:
                        self._submit(work, _to_record(message))
                self._flow_control(consumer)
                if 0 < fetched < s.max_poll_records and s.fetch_linger_ms:
                    await asyncio.sleep(s.fetch_linger_ms / 1000)  # see ConsumerSettings.fetch_linger_ms
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
        except KafkaError as exc:
            if not exc.retriable:
                raise
            # The coordinator is away (the broker restarting): the next interval commits these and more.
            self._broker.failed(exc, "commit")
            return
        self._broker.recovered()
        for work in works:
            if work.tp in offsets:
                work.committed = offsets[work.tp].offset
                self.sensors.on_committed(self.service, work.tp.topic, work.tp.partition, work.committed)

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for work in self._partitions.values():
            if work.tp.topic != self.input_topic:
                continue
            highwater = consumer.highwater(work.tp)
            position = work.offsets.committable()
            if highwater is not None and position is not None:
                behind = max(0, highwater - position)
                self.sensors.on_lag(self.service, work.tp.topic, work.tp.partition, behind)
                lag += behind
        self.metrics.lag = lag
        self.sensors.on_parked_keys(self.service, len(self.outcomes.blocked))

    # rebalance

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        self._joined = True  # called after every join, also with nothing assigned
        tiers = self.policy.tier_topics()
        keys_in_flight = self.settings.keys_in_flight_per_partition
        for tp in assigned:
            self._partitions[tp] = _PartitionWork(tp, delayed=tp.topic in tiers, keys_in_flight=keys_in_flight)
        inputs = sorted(tp.partition for tp in assigned if tp.topic == self.input_topic)
        if inputs:
            await self.outcomes.load_blocked(self.input_topic, inputs)

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
        self.sensors.on_record_in(self.service, record)
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
                    await self.outcomes.process_retry(record)
                else:
                    await self.outcomes.process_input(record)
                queue.popleft()
                work.offsets.done(record.offset)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a non-retriable infrastructure error: stop, never skip
            if isinstance(exc, HookstreamError):  # one of ours, which says what to do: no traceback
                log.error("record processing failed; stopping", extra={"service": self.service, "error": str(exc)})
            else:
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

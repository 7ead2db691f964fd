"""The consumer runtime against the real broker and database: retries, dead letters, per-key order."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from subprocess import PIPE

import pytest
from hookstream.consumer import ConsumerService, ConsumerSettings, Record
from hookstream.consumer.dlq import list_dead_letters, redrive, select
from hookstream.consumer.idempotency import first_time
from hookstream.db import Database
from hookstream.errors import MigrationError, PermanentError, RetriableError
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.kafka.headers import EVENT_ID, ORIGINAL_TOPIC
from hookstream.sensors import Sensors
from hookstream.sensors.prometheus import PrometheusSensor
from hookstream.store.audit import AuditLog

from tests.waiting import until

FAST_TIERS = ConsumerSettings(retry_delays=["300ms", "600ms"], commit_interval_ms=200, session_timeout_ms=10_000)


class ScriptedHandler:
    """Fails the events it is told to, the number of times it is told to; records every success in order."""

    def __init__(self) -> None:
        self.retriable_failures: dict[str, int] = {}
        self.permanent: set[str] = set()
        self.attempts: Counter[str] = Counter()
        self.done: list[tuple[str | None, str]] = []

    async def __call__(self, record: Record) -> None:
        event_id = record.event_id
        self.attempts[event_id] += 1
        if event_id in self.permanent:
            raise PermanentError(f"{event_id} can never be processed")
        if self.retriable_failures.get(event_id, 0) > 0:
            self.retriable_failures[event_id] -= 1
            raise RetriableError(f"partner down while processing {event_id}")
        self.done.append((record.key, event_id))

    def order(self, key: str) -> list[str]:
        return [e for k, e in self.done if k == key]


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    async with Database(migrated_database_url) as database:
        yield database


@pytest.fixture
async def produce(kafka_bootstrap: str, unique_name: str) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """Send (key, event id) pairs, in order, to a one-partition input topic named ``unique_name``."""
    TopicAdmin(kafka_bootstrap).ensure_topics([TopicSpec(unique_name, 1, 3_600_000)])
    async with Producer(kafka_bootstrap) as producer:

        async def send(*events: tuple[str, str]) -> None:
            for key, event_id in events:
                await producer.send(unique_name, event_id.encode(), key=key, headers=[(EVENT_ID, event_id.encode())])

        yield send


def _service(
    service_name: str,
    topic: str,
    handler: ScriptedHandler,
    bootstrap: str,
    db: Database,
    sensors: Sensors | None = None,
    **settings: object,
) -> ConsumerService:
    return ConsumerService(
        service_name,
        topic,
        handler,
        bootstrap_servers=bootstrap,
        db=db,
        settings=FAST_TIERS.model_copy(update=settings),
        sensors=sensors,
    )


async def test_retry_keeps_order_for_its_key_while_other_keys_flow(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, produce: Callable[..., Awaitable[None]]
) -> None:
    handler = ScriptedHandler()
    handler.retriable_failures["a1"] = 1
    async with _service(service_name, unique_name, handler, kafka_bootstrap, db) as service:
        await produce(("A", "a1"), ("B", "b1"), ("A", "a2"), ("B", "b2"), ("A", "a3"), ("B", "b3"))
        await until(lambda: len(handler.done) == 6, what="all six events")
        assert service.metrics.retried == 1
        assert service.metrics.parked == 2
    assert handler.order("A") == ["a1", "a2", "a3"]
    assert handler.order("B") == ["b1", "b2", "b3"]
    # Order B never waited for order A's retry: it was finished before a1's second attempt.
    assert [e for _, e in handler.done].index("b3") < [e for _, e in handler.done].index("a1")
    assert handler.attempts["a1"] == 2
    assert handler.attempts["a2"] == 1


async def test_poison_record_goes_to_the_dlq_and_the_partition_keeps_flowing(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, produce: Callable[..., Awaitable[None]]
) -> None:
    handler = ScriptedHandler()
    handler.permanent.add("b2")
    async with _service(service_name, unique_name, handler, kafka_bootstrap, db) as service:
        await produce(("B", "b1"), ("B", "b2"), ("B", "b3"), ("C", "c1"))
        await until(lambda: len(handler.done) == 3, what="the three good events")
        assert service.metrics.dead_lettered == 1
    assert handler.order("B") == ["b1", "b3"]
    assert handler.attempts["b2"] == 1  # a permanent error is not retried
    [letter] = await list_dead_letters(kafka_bootstrap, db, service_name)
    assert (letter.event_id, letter.key, letter.value, letter.attempts) == ("b2", "B", b"b2", 1)
    assert letter.reason == "PermanentError: b2 can never be processed"
    assert letter.header(ORIGINAL_TOPIC) == unique_name


async def test_exhausted_retries_dead_letter_release_the_key_and_redrive_processes_once(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, produce: Callable[..., Awaitable[None]]
) -> None:
    handler = ScriptedHandler()
    handler.retriable_failures["a1"] = 99
    async with _service(service_name, unique_name, handler, kafka_bootstrap, db) as service:
        await produce(("A", "a1"), ("A", "a2"), ("A", "a3"), ("D", "d1"))
        # A released record is counted after its unpark commits, a moment after its handler returned.
        await until(
            lambda: handler.order("A") == ["a2", "a3"] and service.metrics.released == 2,
            what="a2, a3 released after a1 was dead-lettered",
        )
        assert handler.attempts["a1"] == 3  # first try + two tiers
        assert service.metrics.dead_lettered == 1
        assert service.metrics.released == 2

        [letter] = await list_dead_letters(kafka_bootstrap, db, service_name)
        assert (letter.event_id, letter.attempts, letter.redriven) == ("a1", 3, False)
        handler.retriable_failures["a1"] = 0  # the partner is fixed
        async with Producer(kafka_bootstrap) as producer:
            chosen = select(await list_dead_letters(kafka_bootstrap, db, service_name), event_ids=["a1"])
            assert await redrive(producer, db, service_name, chosen) == 1
        await until(lambda: "a1" in handler.order("A"), what="the redriven a1")
        letters = await list_dead_letters(kafka_bootstrap, db, service_name)
        assert [d.redriven for d in letters] == [True]
        assert select(letters, everything=True) == []  # already redriven: not sent twice by accident
        await asyncio.sleep(1.0)  # nothing else arrives
    assert handler.order("A") == ["a2", "a3", "a1"]
    assert handler.attempts["a1"] == 4


async def test_parked_keys_survive_a_restart(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, produce: Callable[..., Awaitable[None]]
) -> None:
    handler = ScriptedHandler()
    handler.retriable_failures["a1"] = 1
    metrics = PrometheusSensor()

    def parked_keys() -> float | None:
        return metrics.registry.get_sample_value("hookstream_parked_keys", {"service": service_name})

    service = _service(service_name, unique_name, handler, kafka_bootstrap, db, Sensors([metrics]), retry_delays=["3s"])
    async with service:
        await produce(("A", "a1"), ("A", "a2"), ("E", "e1"))
        await until(lambda: service.metrics.parked == 1 and handler.order("E") == ["e1"], what="a2 parked")
        await until(lambda: parked_keys() == 1, what="one key parked, on /metrics")  # A; E flowed
    assert handler.order("A") == []
    # A new instance (same group) picks up the retry and the parked record from Kafka and Postgres.
    async with _service(service_name, unique_name, handler, kafka_bootstrap, db, retry_delays=["3s"]):
        await produce(("A", "a3"))
        await until(lambda: len(handler.order("A")) == 3, what="a1, a2, a3 after the restart")
    assert handler.order("A") == ["a1", "a2", "a3"]
    assert handler.attempts["a2"] == 1
    assert handler.attempts["a3"] == 1


async def test_a_missing_table_stops_the_service_and_files_no_record_as_bad(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, produce: Callable[..., Awaitable[None]]
) -> None:
    table = f"t_{unique_name.replace('-', '_').replace('.', '_')}"
    seen: list[str] = []

    async def handler(record: Record) -> None:
        async with db.connection() as conn:
            await conn.execute(f"INSERT INTO {table} VALUES (%s)", (record.event_id,))  # noqa: S608 - test name
        seen.append(record.event_id)

    service = ConsumerService(
        service_name, unique_name, handler, bootstrap_servers=kafka_bootstrap, db=db, settings=FAST_TIERS
    )
    await service.start()
    try:
        await produce(("A", "a1"))
        with pytest.raises(MigrationError, match="migrations applied"):
            await asyncio.wait_for(service.wait(), 30)
    finally:
        await service.stop()
    assert seen == []
    assert await list_dead_letters(kafka_bootstrap, db, service_name) == []
    async with db.connection() as conn:  # the migration, applied late
        await conn.execute(f"CREATE TABLE {table} (event_id text PRIMARY KEY)")
    async with ConsumerService(
        service_name, unique_name, handler, bootstrap_servers=kafka_bootstrap, db=db, settings=FAST_TIERS
    ):
        await until(lambda: seen == ["a1"], what="a1 once the table exists")


async def test_effects_are_applied_once_per_event(db: Database) -> None:
    async with db.transaction() as conn:
        assert await first_time(conn, "crm", "evt-1")
    async with db.transaction() as conn:
        assert not await first_time(conn, "crm", "evt-1")  # a redelivery
        assert await first_time(conn, "fulfillment", "evt-1")  # another service's effect is its own

    async def failing_effect() -> None:
        async with db.transaction() as conn:
            assert await first_time(conn, "crm", "evt-2")
            raise RuntimeError("the effect failed")  # the marker rolls back with it

    with pytest.raises(RuntimeError):
        await failing_effect()
    async with db.transaction() as conn:
        assert await first_time(conn, "crm", "evt-2")


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookstream", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await proc.communicate()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_dlq_cli_lists_and_redrives(
    kafka_bootstrap: str,
    unique_name: str,
    service_name: str,
    migrated_database_url: str,
    db: Database,
    produce: Callable[..., Awaitable[None]],
) -> None:
    handler = ScriptedHandler()
    handler.permanent.add("p1")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "COLUMNS": "200",
    }
    async with _service(service_name, unique_name, handler, kafka_bootstrap, db):
        await produce(("P", "p1"), ("P", "p2"))
        await until(lambda: handler.order("P") == ["p2"], what="p2")
        await until(lambda: handler.attempts["p1"] == 1, what="p1 dead-lettered")
        await asyncio.sleep(0.5)

        code, stdout, _ = await _cli("dlq", "list", service_name, env=env)
        assert code == 0
        assert "p1" in stdout
        assert "PermanentError: p1 can never be processed" in stdout

        code, _, stderr = await _cli("dlq", "redrive", service_name, env=env)
        assert code == 1
        assert "say which dead letters to redrive" in stderr
        code, _, stderr = await _cli("dlq", "redrive", service_name, "--position", "0:99", env=env)
        assert code == 1
        assert "not in the dead-letter topic: 0:99" in stderr

        handler.permanent.clear()
        code, stdout, _ = await _cli("dlq", "redrive", service_name, "--position", "0:0", env=env)
        assert code == 0, stdout
        assert "Redrove 1 dead letter(s)" in stdout
        [entry] = await AuditLog(db).recent(target=service_name)
        assert (entry.actor, entry.action, entry.after) == (
            f"cli:{getpass.getuser()}",
            "dead_letters.redrive",
            {"redriven": ["0:0"]},
        )
        await until(lambda: handler.order("P") == ["p2", "p1"], what="the redriven p1")

        code, stdout, _ = await _cli("dlq", "list", service_name, env=env)
        assert "No dead letters waiting" in stdout


async def test_rebalances_lose_nothing_and_keep_each_keys_order(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database
) -> None:
    TopicAdmin(kafka_bootstrap).ensure_topics([TopicSpec(unique_name, 6, 3_600_000)])
    seen: list[tuple[str, int]] = []

    async def slow_handler(record: Record) -> None:
        await asyncio.sleep(0.002)  # work in flight when partitions move
        seen.append((record.key or "", int(record.event_id.rsplit("-", 1)[1])))

    keys, per_key = 30, 40
    first = _service(service_name, unique_name, slow_handler, kafka_bootstrap, db)  # type: ignore[arg-type]
    second = _service(service_name, unique_name, slow_handler, kafka_bootstrap, db)  # type: ignore[arg-type]
    async with Producer(kafka_bootstrap) as producer:
        await first.start()
        for n in range(per_key):
            for k in range(keys):
                await producer.send(unique_name, b"x", key=f"k{k}", headers=[(EVENT_ID, f"k{k}-{n}".encode())])
            if n == per_key // 3:
                await second.start()  # partitions move to the newcomer while records are in flight
            if n == 2 * per_key // 3:
                await first.stop()  # and back, as an instance leaves
        await until(lambda: len({s for s in seen}) == keys * per_key, timeout_s=60, what="every event")
        await second.stop()
    assert {s for s in seen} == {(f"k{k}", n) for k in range(keys) for n in range(per_key)}
    for k in range(keys):
        firsts: list[int] = []
        for key, n in seen:
            if key == f"k{k}" and n not in firsts:
                firsts.append(n)
        assert firsts == sorted(firsts), f"key k{k} was processed out of order: {firsts}"


async def test_retry_after_from_the_error_delays_the_next_attempt(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, produce: Callable[..., Awaitable[None]]
) -> None:
    attempts: list[float] = []

    async def rate_limited_once(record: Record) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RetriableError("429 from the partner", retry_after_ms=1500)

    async with _service(service_name, unique_name, rate_limited_once, kafka_bootstrap, db):  # type: ignore[arg-type]
        await produce(("R", "r1"))
        await until(lambda: len(attempts) == 2, what="the second attempt")
    assert attempts[1] - attempts[0] >= 1.5  # the tier says 300 ms; the partner asked for 1.5 s


async def test_a_member_beyond_the_partition_count_is_ready_as_a_standby(
    kafka_bootstrap: str, unique_name: str, service_name: str, db: Database, topic_admin: TopicAdmin
) -> None:
    """A rollout with maxUnavailable 0 waits for the new pod to be ready; with as many pods as
    partitions, the new one may get none, and must not be held unready for it."""
    topic = f"{unique_name}.single"
    topic_admin.ensure_topics([TopicSpec(topic, 1, 3_600_000)])
    first = _service(service_name, topic, ScriptedHandler(), kafka_bootstrap, db)
    second = _service(service_name, topic, ScriptedHandler(), kafka_bootstrap, db)
    expected = sorted(
        [f"1 partition(s) of {topic}", f"a standby: the group's other members hold every partition of {topic}"]
    )
    said: list[str] = []
    async with first, second:

        async def settled() -> bool:  # a rebalance may be under way: wait for the group to settle
            states = [*await first.ready(), *await second.ready()]
            said[:] = sorted(detail for _, _, detail in states)
            return all(ok for _, ok, _ in states) and said == expected

        await until(settled, 30, lambda: f"one member with the partition, one a standby, both ready: {said}")

"""`DevStack.up()` returns only once the broker acknowledges an idempotent produce.

A warm-restarted broker answers metadata while it still refuses producer ids ("Coordinator
load in progress"); the first acks=all idempotent produce after `dev up` used to wait for it,
and the first webhooks got 503s. Here a stack of its own is started, stopped and started again
on the same state dir (the warm restart), and after each `up` a fresh ``Producer`` (the one
ingress uses) must have its first record acknowledged at once, with no producer-id retries.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookstream.kafka import Producer, TopicAdmin
from hookstream.settings import KafkaSettings, StackSettings
from hookstream_schemas.topics import DEV_READY
from hookstream_tools.devstack import DevStack
from hookstream_tools.devstack.process import free_port
from hookstream_tools.devstack.settings import DevStackSettings

TOPIC = "t.devstack.ready.probe"


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _first_send_s(bootstrap: str) -> tuple[float, list[str]]:
    """Seconds a fresh producer's first record takes to be acknowledged, and what librdkafka logged meanwhile."""
    lines = _Lines()
    logger = logging.Logger("test.librdkafka")  # not registered: nothing reaches the console
    logger.addHandler(lines)
    started = time.monotonic()
    async with Producer(bootstrap, KafkaSettings(delivery_timeout_ms=5000), logger=logger) as producer:
        await producer.send(TOPIC, b"first", key=b"k")
    return time.monotonic() - started, lines.lines


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    settings = DevStackSettings(
        state_dir=tmp_path / "state",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
    )
    stack = DevStack(settings, StackSettings(_env_file=None, KAFKA_BOOTSTRAP_SERVERS=None, DATABASE_URL=None))
    try:
        yield stack
    finally:
        stack.down()


def _assert_first_produce_is_prompt(bootstrap: str, when: str) -> float:
    first_s, logged = asyncio.run(_first_send_s(bootstrap))  # DeliveryFailed after 5 s would fail the test
    assert not [line for line in logged if "idempotence PID" in line or "Coordinator load" in line], (when, logged)
    # Against fresh producers a moment later, when the broker is long settled: the first was no slower.
    # (A fresh idempotent producer takes ~0.5 s to its first ack anyway; librdkafka retries a refused
    # producer id after another ~0.5 s, which made the first produce after a warm restart ~1.1 s here.)
    later_s = statistics.median(asyncio.run(_first_send_s(bootstrap))[0] for _ in range(3))
    assert first_s < later_s + 0.3, f"{when}: first produce {first_s:.3f} s, later ones {later_s:.3f} s"
    return first_s


def test_first_produce_after_up_and_after_a_warm_restart_is_acknowledged_at_once(stack: DevStack) -> None:
    status = stack.up()
    bootstrap = status.kafka_bootstrap_servers
    assert status.timings_s["kafka_produce_acknowledged"] >= status.timings_s["kafka_ready"]
    assert TopicAdmin(bootstrap).partition_count(DEV_READY.name) == 1
    TopicAdmin(bootstrap).ensure_topics([DEV_READY.renamed(TOPIC)])
    _assert_first_produce_is_prompt(bootstrap, "after the first up")

    kafka_pid = stack.kafka.pid
    stack.down()
    assert stack.kafka.pid is None
    status = stack.up()  # warm: same state dir, same ports, data kept
    assert stack.kafka.pid not in (None, kafka_pid)
    assert "kafka_produce_acknowledged" in status.timings_s
    first_s = _assert_first_produce_is_prompt(bootstrap, "after a warm restart")
    print(f"first produce after a warm restart: {first_s:.3f} s; up timings {status.timings_s}")


def test_second_up_on_a_running_stack_stays_quick(stack: DevStack) -> None:
    stack.up()
    started = time.monotonic()
    status = stack.up()  # both servers already run: only the probe record is sent
    assert time.monotonic() - started < 5
    assert status.timings_s["kafka_produce_acknowledged"] < 5

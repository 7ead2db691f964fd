"""The produce probe of `DevStack.up()` when no broker acknowledges: a bounded wait, then one clear line."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hookstream.errors import BrokerUnavailable, DevStackError
from hookstream.settings import StackSettings
from hookstream_schemas.topics import DEV_READY
from hookstream_tools.devstack import DevStack
from hookstream_tools.devstack.process import free_port
from hookstream_tools.devstack.settings import DevStackSettings
from hookstream_tools.devstack.stack import first_produce


def _stack(tmp_path: Path, **env: str | None) -> DevStack:
    settings = DevStackSettings(
        state_dir=tmp_path / "state",
        cache_dir=tmp_path / "cache",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
        kafka_ready_timeout_ms=1500,
    )
    stack = StackSettings(_env_file=None, **{"KAFKA_BOOTSTRAP_SERVERS": None, "DATABASE_URL": None, **env})
    return DevStack(settings, stack)


@pytest.fixture
def stand_in_broker(tmp_path: Path) -> Iterator[DevStack]:
    """A local stack whose broker pid file names a live process that serves nothing."""
    stack = _stack(tmp_path)
    proc = subprocess.Popen(["sleep", "60"])
    stack.kafka.dir.mkdir(parents=True)
    stack.kafka.pid_path.write_text(f"{proc.pid}\n")
    try:
        yield stack
    finally:
        proc.kill()
        proc.wait()


async def test_nobody_acknowledging_times_out_naming_the_address_and_topic() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        await first_produce(address, timeout_ms=1500)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"Kafka at {address!r} answers but did not acknowledge a produce to {DEV_READY.name!r}" in message
    assert "within 1500 ms (last error: " in message
    assert "\n" not in message


def test_local_broker_that_never_acknowledges_names_its_log(stand_in_broker: DevStack) -> None:
    with pytest.raises(DevStackError) as caught:
        stand_in_broker._wait_first_produce(stand_in_broker.kafka.bootstrap)
    message = str(caught.value)
    assert "did not acknowledge a produce" in message
    assert message.endswith(f"; see the broker log {stand_in_broker.kafka.log_path}")
    assert "\n" not in message


def test_local_broker_that_exits_stops_the_wait_with_its_log_tail(tmp_path: Path) -> None:
    stack = _stack(tmp_path)  # no pid file: the broker process is gone
    stack.kafka.dir.mkdir(parents=True)
    stack.kafka.log_path.write_text("ERROR Exiting Kafka due to fatal exception\n")
    started = time.monotonic()
    with pytest.raises(DevStackError) as caught:
        stack._wait_first_produce(stack.kafka.bootstrap)
    assert time.monotonic() - started < 1
    assert f"the Kafka broker exited while starting; last lines of {stack.kafka.log_path}" in str(caught.value)
    assert "Exiting Kafka due to fatal exception" in str(caught.value)


def test_external_broker_that_never_acknowledges_is_broker_unavailable(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    stack = _stack(tmp_path, KAFKA_BOOTSTRAP_SERVERS=address)
    with pytest.raises(BrokerUnavailable) as caught:
        stack._wait_first_produce(address)
    assert str(caught.value).endswith("; see the broker's log")

"""`hookstream dev` as a user runs it: a second, separate stack on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hookstream_tools.devstack.process import free_port, pid_alive

HOOKSTREAM = [sys.executable, "-m", "hookstream"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    env.update(
        HOOKSTREAM_DEV_STATE_DIR=str(tmp_path / "state"),
        HOOKSTREAM_DEV_KAFKA_PORT=str(free_port()),
        HOOKSTREAM_DEV_KAFKA_CONTROLLER_PORT=str(free_port()),
        HOOKSTREAM_DEV_POSTGRES_PORT=str(free_port()),
    )
    env.update(extra)
    return env


def _hs(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HOOKSTREAM, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
    )


def test_up_writes_stack_env_is_idempotent_and_down_stops(tmp_path: Path) -> None:
    env = _env(tmp_path)
    state = Path(env["HOOKSTREAM_DEV_STATE_DIR"])
    try:
        first = _hs(env, "dev", "up")
        assert first.returncode == 0, first.stderr
        lines = (state / "stack.env").read_text().splitlines()
        assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{env['HOOKSTREAM_DEV_KAFKA_PORT']}" in lines
        assert f"DATABASE_URL=postgresql://postgres@127.0.0.1:{env['HOOKSTREAM_DEV_POSTGRES_PORT']}/hookstream" in lines
        kafka_pid = int((state / "kafka" / "broker.pid").read_text())

        status = _hs(env, "dev", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "# kafka: answers" in status.stdout
        assert "# postgres: answers" in status.stdout
        for line in lines[1:]:
            assert line in status.stdout.splitlines()

        started = time.monotonic()
        second = _hs(env, "dev", "up")
        assert second.returncode == 0, second.stderr
        assert time.monotonic() - started < 10
        assert int((state / "kafka" / "broker.pid").read_text()) == kafka_pid  # reused, not restarted
    finally:
        down = _hs(env, "dev", "down")
    assert down.returncode == 0, down.stderr
    assert "kafka: stopped" in down.stdout
    assert "postgres: stopped" in down.stdout
    assert not pid_alive(kafka_pid)
    assert not (state / "stack.env").exists()
    after = _hs(env, "dev", "status")
    assert after.returncode == 1
    assert "# kafka: does not answer (not running)" in after.stdout


def test_broker_that_fails_to_start_prints_its_log_tail(tmp_path: Path) -> None:
    env = _env(tmp_path, HOOKSTREAM_DEV_KAFKA_HEAP="-Xmx1k")
    result = _hs(env, "dev", "up")
    assert result.returncode == 1
    assert "the Kafka broker exited while starting" in result.stderr
    assert "Too small maximum heap" in result.stderr
    # Nothing is left running behind the failure.
    pg_pid = Path(env["HOOKSTREAM_DEV_STATE_DIR"]) / "postgres" / "data" / "postmaster.pid"
    assert not pg_pid.exists()


def test_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = _env(tmp_path, HOOKSTREAM_DEV_POSTGRES_PORT=str(port))
        result = _hs(env, "dev", "up")
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 (PostgreSQL) is already in use" in result.stderr
    assert "HOOKSTREAM_DEV_POSTGRES_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(env["HOOKSTREAM_DEV_STATE_DIR"]) / "kafka" / "broker.pid").exists()


def test_wrong_bootstrap_servers_time_out_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = _env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=address, HOOKSTREAM_DEV_KAFKA_READY_TIMEOUT_MS="2000")
    started = time.monotonic()
    result = _hs(env, "dev", "up", timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert f"Kafka at '{address}' did not answer within 2000 ms" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("java", "`java` was not found on PATH: the local Kafka broker needs Java 17"),
        ("mvn", "`mvn` was not found on PATH: the Kafka jars are resolved from Maven Central"),
    ],
)
def test_missing_java_or_maven_is_one_clear_line(tmp_path: Path, missing: str, expected: str) -> None:
    env = _env(tmp_path, PATH=str(tmp_path / "empty-bin"))
    if missing == "mvn":  # an empty jar cache makes Maven necessary
        env["HOOKSTREAM_DEV_CACHE_DIR"] = str(tmp_path / "cache")
    result = _hs(env, "dev", "up", timeout=60)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_foreground_stops_both_servers_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    state = Path(env["HOOKSTREAM_DEV_STATE_DIR"])
    proc = subprocess.Popen(
        [*HOOKSTREAM, "dev", "up", "--foreground"],
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (state / "stack.env").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (state / "stack.env").exists(), proc.stderr.read() if proc.stderr else ""
        kafka_pid = int((state / "kafka" / "broker.pid").read_text())
        pg_pid = int((state / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            _hs(env, "dev", "down")
    assert proc.returncode == 0, err
    assert "Stopped." in out
    assert not pid_alive(kafka_pid)
    assert not pid_alive(pg_pid)

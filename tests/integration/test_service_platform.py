"""A new consumer service is one folder plus one entry-point line.

The example service in ``tests/example_service`` registers itself the way any package does: an
``entry_points.txt`` in its distribution metadata (written here into a temporary folder on
PYTHONPATH, as an installed package would have it). Nothing in the CLI or the library names it,
yet it is listed, migrated, run, probed, and its dead letters are listed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from hookstream.db.migrations import bundled_migrations
from hookstream.kafka.headers import EVENT_ID
from hookstream_tools.devstack.process import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registered(tmp_path: Path) -> Path:
    """A distribution's metadata that declares the example service, the way `pip install` would write it."""
    dist = tmp_path / "hookstream_example-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hookstream-example\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hookstream.services]\nexample = tests.example_service.spec:SPEC\n")
    return tmp_path


@pytest.fixture
def env(registered: Path, kafka_bootstrap: str, database_url: str, unique_name: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(registered), str(ROOT)]),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,  # fresh and empty: nothing is migrated yet
        "HOOKSTREAM_EXAMPLE_SERVICE_NAME": f"example-{unique_name.replace('.', '-')}",
        "HOOKSTREAM_EXAMPLE_INPUT_TOPIC": f"{unique_name}.input",
        "HOOKSTREAM_HEALTH_PORT": str(free_port()),
        "COLUMNS": "200",
    }


def hookstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookstream", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(what: str, condition: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (OSError, urllib.error.URLError):
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hookstream", "run", "example"], env=env, stderr=subprocess.PIPE, text=True
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_the_example_service_is_listed_and_refuses_an_unmigrated_database_in_one_line(env: dict[str, str]) -> None:
    listed = hookstream(env, "services")
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines()} >= {"example", "normalizer", "delivery", "ingress"}

    refused = hookstream(env, "run", "example", "--no-migrate")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr  # one line, no traceback
    assert f"{len(bundled_migrations()) + 1} migration(s) not applied" in lines[0]  # the library's and the example's
    assert "run `hookstream setup`" in lines[0]


def test_the_example_service_is_migrated_run_probed_and_its_dead_letters_listed(
    env: dict[str, str], kafka_bootstrap: str, database_url: str, running: subprocess.Popen[str]
) -> None:
    service = env["HOOKSTREAM_EXAMPLE_SERVICE_NAME"]
    probes = f"http://127.0.0.1:{env['HOOKSTREAM_HEALTH_PORT']}"
    wait_for("/healthz", lambda: get(f"{probes}/healthz")[0] == 200)
    _, body = wait_for("/readyz", lambda: (r := get(f"{probes}/readyz"))[0] == 200 and r)
    checks = {c["name"]: c["ok"] for c in json.loads(body)["checks"]}
    assert checks == {"kafka": True, "postgres": True, f"consumer hookstream.{service}": True}

    with psycopg.connect(database_url) as conn:  # its own migration was applied at start
        ledger = conn.execute("SELECT component, version FROM schema_migrations WHERE component = 'example'")
        assert ledger.fetchall() == [("example", 1)]

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for event_id, value in (("e1", b"hello"), ("e2", b"fail"), ("e3", b"again"), ("e1", b"hello")):
        producer.produce(
            env["HOOKSTREAM_EXAMPLE_INPUT_TOPIC"], value, key=f"k-{event_id}", headers=[(EVENT_ID, event_id)]
        )
    assert producer.flush(10) == 0

    def remembered() -> list[tuple[str, ...]]:
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT event_id FROM example_events ORDER BY event_id").fetchall()

    wait_for("e1 and e3 handled", lambda: remembered() == [("e1",), ("e3",)])

    def metrics() -> str:
        return get(f"{probes}/metrics")[1]

    text = wait_for("the dead letter counted", lambda: (m := metrics()) and f'service="{service}"' in m and m)
    assert f'hookstream_records_dead_lettered_total{{service="{service}"}} 1.0' in text
    assert f'hookstream_records_handled_total{{service="{service}"}} 3.0' in text  # e1 twice (once effective), e3

    letters = hookstream(env, "dlq", "list", service)
    assert letters.returncode == 0, letters.stderr
    assert "e2" in letters.stdout
    assert "the example refuses 'fail'" in letters.stdout
    assert "1 dead letter(s)" in letters.stdout

    running.send_signal(signal.SIGTERM)
    assert running.wait(timeout=60) == 0
    assert remembered() == [("e1",), ("e3",)]  # the redelivered e1 had no second effect

"""One Kafka broker and one PostgreSQL per test session.

In order: servers named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL; testcontainers
when a Docker engine answers (HOOKSTREAM_TEST_STACK=docker forces it, =local forbids
it); otherwise the project's own local launcher, on free ports in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hookstream.settings import StackSettings
from hookstream_tools.devstack import DevStack
from hookstream_tools.devstack.process import free_port
from hookstream_tools.devstack.settings import DevStackSettings


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    database_url: str
    how: str


def docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextmanager
def session_servers(state_dir: Path) -> Iterator[Servers]:
    env = StackSettings(_env_file=None)
    if env.kafka_bootstrap_servers and env.database_url:
        yield Servers(env.kafka_bootstrap_servers, env.database_url, "environment")
        return
    choice = os.environ.get("HOOKSTREAM_TEST_STACK", "auto")
    if choice == "docker" or (choice == "auto" and docker_engine_available()):
        with _containers() as servers:
            yield servers
        return
    settings = DevStackSettings(
        state_dir=state_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
    )
    stack = DevStack(settings, StackSettings(_env_file=None, KAFKA_BOOTSTRAP_SERVERS=None, DATABASE_URL=None))
    status = stack.up()
    try:
        yield Servers(status.kafka_bootstrap_servers, status.database_url, "local launcher")
    finally:
        stack.down()


@contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer("apache/kafka:4.3.1").with_kraft() as kafka, PostgresContainer("postgres:18") as pg:
        url = pg.get_connection_url(driver=None)
        yield Servers(kafka.get_bootstrap_server(), url, "testcontainers")

"""The local stack as one unit: ``up`` (idempotent), ``down``, ``status``, ``stack.env``.

``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` set → those servers are used and the
matching local server is not started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from hookstream.db.pool import redact
from hookstream.devstack.jars import KafkaJars, Progress
from hookstream.devstack.kafka import LocalKafka
from hookstream.devstack.postgres import LocalPostgres
from hookstream.errors import BrokerUnavailable, DevStackError
from hookstream.kafka.admin import wait_for_broker
from hookstream.settings import DevStackSettings, StackSettings


@dataclass
class StackStatus:
    kafka_bootstrap_servers: str
    database_url: str
    kafka_external: bool
    postgres_external: bool
    kafka_pid: int | None = None
    postgres_pid: int | None = None
    kafka_answers: bool = False
    postgres_answers: bool = False
    timings_s: dict[str, float] = field(default_factory=dict)

    def env_lines(self) -> str:
        return f"KAFKA_BOOTSTRAP_SERVERS={self.kafka_bootstrap_servers}\nDATABASE_URL={self.database_url}\n"


def read_stack_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


class DevStack:
    def __init__(self, settings: DevStackSettings, stack: StackSettings | None = None) -> None:
        self.settings = settings
        self.stack = stack or StackSettings(_env_file=None)
        self.jars = KafkaJars(settings.cache_dir)
        self.kafka = LocalKafka(settings, self.jars)
        self.postgres = LocalPostgres(settings)

    @property
    def kafka_external(self) -> bool:
        return self.stack.kafka_bootstrap_servers is not None

    @property
    def postgres_external(self) -> bool:
        return self.stack.database_url is not None

    def _status(self) -> StackStatus:
        return StackStatus(
            kafka_bootstrap_servers=self.stack.kafka_bootstrap_servers or self.kafka.bootstrap,
            database_url=self.stack.database_url or self.postgres.url,
            kafka_external=self.kafka_external,
            postgres_external=self.postgres_external,
        )

    def up(self, progress: Progress | None = None) -> StackStatus:
        """Start what is not running and wait until both servers answer."""
        status = self._status()
        self._check_external(status)
        # Every port is checked before anything starts, so a conflict leaves nothing half-started.
        if not self.kafka_external and self.kafka.pid is None:
            self.kafka.check_ports()
        if not self.postgres_external and self.postgres.pid is None:
            self.postgres.check_ports()
        started = time.monotonic()
        if not self.kafka_external and self.jars.resolve(progress):
            status.timings_s["jars_resolved"] = time.monotonic() - started
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            # The broker boots in its own process while PostgreSQL starts: warm start is the slower of the two.
            if not self.kafka_external:
                self.kafka.start()
            if not self.postgres_external:
                self.postgres.start()
                self.postgres.wait_ready()
                status.timings_s["postgres_ready"] = time.monotonic() - t0
            if not self.kafka_external:
                self.kafka.wait_ready()
                status.timings_s["kafka_ready"] = time.monotonic() - t0
        except BaseException:
            self.down()
            raise
        status.kafka_pid, status.postgres_pid = self.kafka.pid, self.postgres.pid
        status.kafka_answers = status.postgres_answers = True
        self.settings.stack_env_path.write_text(
            "# written by `hookstream dev up`; `source` it or let services read it\n" + status.env_lines()
        )
        return status

    def _check_external(self, status: StackStatus) -> None:
        if self.kafka_external:
            wait_for_broker(status.kafka_bootstrap_servers, timeout_ms=self.settings.kafka_ready_timeout_ms)
        if self.postgres_external and not _postgres_answers(status.database_url):
            raise DevStackError(
                f"PostgreSQL at {redact(status.database_url)} does not accept connections; check DATABASE_URL"
            )

    def down(self) -> dict[str, bool]:
        stopped = {"kafka": self.kafka.stop(), "postgres": self.postgres.stop()}
        self.settings.stack_env_path.unlink(missing_ok=True)
        return stopped

    def status(self) -> StackStatus:
        status = self._status()
        status.kafka_pid, status.postgres_pid = self.kafka.pid, self.postgres.pid
        try:
            wait_for_broker(status.kafka_bootstrap_servers, timeout_ms=2000)
            status.kafka_answers = True
        except BrokerUnavailable:
            status.kafka_answers = False
        status.postgres_answers = _postgres_answers(status.database_url)
        return status


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False

"""The local stack as one unit: ``up`` (idempotent), ``down``, ``status``, ``stack.env``.

``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` set → those servers are used and the
matching local server is not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from confluent_kafka import KafkaException
from hookstream.db.pool import redact
from hookstream.errors import BrokerUnavailable, DeliveryFailed, DevStackError, ProducerQueueFull
from hookstream.kafka import Producer, TopicAdmin
from hookstream.kafka.admin import wait_for_broker
from hookstream.secretbox import new_key
from hookstream.settings import Brokers, KafkaConnection, KafkaSettings, StackSettings
from hookstream_schemas.topics import DEV_READY

from hookstream_tools.devstack.jars import KafkaJars, Progress
from hookstream_tools.devstack.kafka import LocalKafka
from hookstream_tools.devstack.postgres import LocalPostgres
from hookstream_tools.devstack.process import log_tail
from hookstream_tools.devstack.settings import DevStackSettings

# `up` returns once the broker has acknowledged one record from the project's own idempotent,
# acks=all producer, sent to DEV_READY: answering metadata is not enough. A warm-restarted broker
# answers metadata while it still refuses producer ids ("Coordinator load in progress"), and the
# first webhooks after `dev up` waited for it and got 503s. One small record per `up`, kept an hour.
# Each attempt's producer gives up after this long; a fresh one then tries again until the deadline.
READY_ATTEMPT_MS = 5_000


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
    secrets_keys: str | None = None  # the state folder's dev key (HOOKSTREAM_SECRETS_KEYS), once made

    def env_lines(self) -> str:
        lines = f"KAFKA_BOOTSTRAP_SERVERS={self.kafka_bootstrap_servers}\nDATABASE_URL={self.database_url}\n"
        return lines + (f"HOOKSTREAM_SECRETS_KEYS={self.secrets_keys}\n" if self.secrets_keys else "")


DEV_KEY_ID = "dev1"


def dev_secrets_keys(state_dir: Path, *, create: bool) -> str | None:
    """The local stack's HOOKSTREAM_SECRETS_KEYS, made once per state folder and kept beside the data it
    seals (``make clean`` removes both), so `dev down` and `dev up` again still read what is stored."""
    path = state_dir / "secrets.keys"
    if not path.exists():
        if not create:
            return None
        state_dir.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.suppress(FileExistsError),
            os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file,
        ):
            file.write(new_key(DEV_KEY_ID) + "\n")
    return path.read_text().strip() or None


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

    @property
    def kafka_connection(self) -> KafkaConnection:
        """An external Kafka with its security from the environment (KAFKA_SECURITY_PROTOCOL…), or the
        local broker's PLAINTEXT listener."""
        if self.kafka_external:
            return self.stack.kafka_connection()
        return KafkaConnection(self.kafka.bootstrap)

    def _status(self) -> StackStatus:
        return StackStatus(
            kafka_bootstrap_servers=self.stack.kafka_bootstrap_servers or self.kafka.bootstrap,
            database_url=self.stack.database_url or self.postgres.url,
            kafka_external=self.kafka_external,
            postgres_external=self.postgres_external,
            secrets_keys=dev_secrets_keys(self.settings.state_dir, create=False),
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
            self._wait_first_produce(self.kafka_connection)
            status.timings_s["kafka_produce_acknowledged"] = time.monotonic() - t0
        except BaseException:
            self.down()
            raise
        status.kafka_pid, status.postgres_pid = self.kafka.pid, self.postgres.pid
        status.kafka_answers = status.postgres_answers = True
        status.secrets_keys = dev_secrets_keys(self.settings.state_dir, create=True)
        self.settings.stack_env_path.write_text(
            "# written by `hookstream dev up`; `source` it or let services read it\n" + status.env_lines()
        )
        return status

    def _wait_first_produce(self, bootstrap: Brokers) -> None:
        """Until the broker acknowledges an idempotent produce; the error names the broker log."""
        local = not self.kafka_external
        alive = (lambda: self.kafka.pid is not None) if local else None
        try:
            asyncio.run(first_produce(bootstrap, timeout_ms=self.settings.kafka_ready_timeout_ms, alive=alive))
        except _BrokerExited:
            raise DevStackError(
                f"the Kafka broker exited while starting; last lines of {self.kafka.log_path}:\n"
                + log_tail(self.kafka.log_path)
            ) from None
        except BrokerUnavailable as exc:
            if local:
                raise DevStackError(f"{exc}; see the broker log {self.kafka.log_path}") from None
            raise BrokerUnavailable(f"{exc}; see the broker's log") from None

    def _check_external(self, status: StackStatus) -> None:
        if self.kafka_external:
            wait_for_broker(self.kafka_connection, timeout_ms=self.settings.kafka_ready_timeout_ms)
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
            wait_for_broker(self.kafka_connection, timeout_ms=2000)
            status.kafka_answers = True
        except BrokerUnavailable:
            status.kafka_answers = False
        status.postgres_answers = _postgres_answers(status.database_url)
        return status


class _BrokerExited(Exception):
    pass


async def first_produce(bootstrap: Brokers, *, timeout_ms: int, alive: Callable[[], bool] | None = None) -> float:
    """Send one record to DEV_READY (created if missing) with ``hookstream.kafka.Producer``, retrying
    until the broker acknowledges it; return the seconds that took, or BrokerUnavailable after ``timeout_ms``.

    ``alive`` false (the local broker's process is gone) stops the wait at once.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout_ms / 1000
    topic_ready = False
    last_error = "none"
    while True:
        if alive is not None and not alive():
            raise _BrokerExited
        remaining_ms = int((deadline - loop.time()) * 1000)
        if remaining_ms <= 0:
            address = KafkaConnection.of(bootstrap).bootstrap_servers
            raise BrokerUnavailable(
                f"Kafka at {address!r} answers but did not acknowledge a produce to {DEV_READY.name!r}"
                f" within {timeout_ms} ms (last error: {last_error})"
            )
        attempt_ms = max(500, min(READY_ATTEMPT_MS, remaining_ms))
        librdkafka = _LastMessage()
        step = "creating the topic" if not topic_ready else "producing"
        try:
            if not topic_ready:
                admin = TopicAdmin(bootstrap, request_timeout_ms=attempt_ms)
                await asyncio.to_thread(admin.ensure_topics, [DEV_READY])
                topic_ready = True
                step = "producing"
            await _produce_one(bootstrap, attempt_ms, librdkafka.logger())
            return loop.time() - started
        except (BrokerUnavailable, DeliveryFailed, ProducerQueueFull, KafkaException, TimeoutError) as exc:
            last_error = f"{step}: {_one_line(str(exc)) or f'{type(exc).__name__} after {attempt_ms} ms'}"
            if librdkafka.message:
                last_error += f"; librdkafka: {_one_line(librdkafka.message)}"
        await asyncio.sleep(0.2)


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _produce_one(bootstrap: Brokers, attempt_ms: int, logger: logging.Logger) -> None:
    settings = KafkaSettings(
        client_id="hookstream-dev-up",
        delivery_timeout_ms=attempt_ms,
        request_timeout_ms=attempt_ms,
        connect_timeout_ms=min(attempt_ms, 10_000),
    )
    # librdkafka's complaints while it retries ("Coordinator load in progress") go to `logger`, not the console.
    producer = Producer(bootstrap, settings, logger=logger)
    await producer.start()
    try:
        await producer.send(DEV_READY.name, f"dev up at {time.time():.3f}".encode(), key=b"dev-up")
    finally:
        await producer.stop(timeout_ms=1_000)


class _LastMessage(logging.Handler):
    """Keeps librdkafka's last log line for the error message."""

    def __init__(self) -> None:
        super().__init__()
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()

    def logger(self) -> logging.Logger:
        logger = logging.Logger("hookstream.devstack.first_produce")  # not registered: nothing propagates
        logger.addHandler(self)
        return logger


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False

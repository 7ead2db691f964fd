"""A single-node Apache Kafka in KRaft mode (combined broker and controller)."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from hookstream.errors import DevStackError
from hookstream.kafka.admin import client_config
from hookstream.kafka.security import properties_text

from hookstream_tools.devstack.jars import KafkaJars
from hookstream_tools.devstack.process import ensure_port_free, log_tail, read_pid, terminate
from hookstream_tools.devstack.settings import DevStackSettings

SCRAM_MECHANISM = "SCRAM-SHA-512"


def _server_properties(settings: DevStackSettings, log_dir: Path) -> str:
    host, port, cport = settings.host, settings.kafka_port, settings.kafka_controller_port
    listeners = f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}"
    advertised = f"PLAINTEXT://{host}:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if settings.kafka_sasl_ssl_port:
        listeners += f",SASL_SSL://{host}:{settings.kafka_sasl_ssl_port}"
        advertised += f",SASL_SSL://{host}:{settings.kafka_sasl_ssl_port}"
        protocols += ",SASL_SSL:SASL_SSL"
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{cport}",
        "listeners": listeners,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A single local node: no reason to wait for more members before the first rebalance.
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.retention.check.interval.ms": "60000",
        **_sasl_ssl_properties(settings),
    }
    return properties_text(lines)


def _sasl_ssl_properties(settings: DevStackSettings) -> dict[str, str]:
    """The SASL_SSL listener's TLS key store and SCRAM login (its users are made by ``--add-scram`` at format)."""
    if not settings.kafka_sasl_ssl_port:
        return {}
    keystore = settings.kafka_ssl_keystore
    if keystore is None or settings.kafka_sasl_password is None:
        raise DevStackError(
            "a SASL_SSL listener (HOOKSTREAM_DEV_KAFKA_SASL_SSL_PORT) needs the broker's key store"
            " (HOOKSTREAM_DEV_KAFKA_SSL_KEYSTORE) and a password for its user (HOOKSTREAM_DEV_KAFKA_SASL_PASSWORD)"
        )
    if not keystore.is_file():
        raise DevStackError(f"HOOKSTREAM_DEV_KAFKA_SSL_KEYSTORE={keystore} is not a file")
    prefix = "listener.name.sasl_ssl."
    found = {
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"{prefix}{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{prefix}ssl.keystore.location": str(keystore.resolve()),
    }
    if keystore.suffix.lower() == ".pem":
        found[f"{prefix}ssl.keystore.type"] = "PEM"
    else:
        if settings.kafka_ssl_keystore_password is None:
            raise DevStackError(
                f"the key store {keystore} is not PEM (.pem): set HOOKSTREAM_DEV_KAFKA_SSL_KEYSTORE_PASSWORD"
            )
        found[f"{prefix}ssl.keystore.type"] = "PKCS12"
        found[f"{prefix}ssl.keystore.password"] = settings.kafka_ssl_keystore_password.get_secret_value()
    return found


def scram_credential(settings: DevStackSettings) -> str:
    """``StorageTool format --add-scram``'s argument for the listener's user."""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    for name, value in (("user", settings.kafka_sasl_username), ("password", password)):
        # The tool's parser splits on these, and takes a quote as the end of a quoted value.
        if not value or any(c in value for c in '",=[]\\') or value != value.strip():
            raise DevStackError(
                f"the SASL_SSL listener's {name} must be non-empty, without spaces at its ends"
                ' and without any of " , = [ ] \\'
            )
    return f'{SCRAM_MECHANISM}=[name={settings.kafka_sasl_username},password="{password}"]'


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A Kafka ``Uuid`` string (URL-safe base64 of 16 random bytes), as ``StorageTool random-uuid`` prints.

    Like Kafka's ``Uuid.randomUuid``, never one starting with '-': the tool's argument parser would
    take it for an option (one format in 64 failed that way)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    def __init__(self, settings: DevStackSettings, jars: KafkaJars) -> None:
        self.settings = settings
        self.jars = jars
        self.dir = (settings.state_dir / "kafka").resolve()
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "server.properties"
        self.log_path = self.dir / "broker.log"
        self.pid_path = self.dir / "broker.pid"

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def pid(self) -> int | None:
        return read_pid(self.pid_path)

    def _format(self) -> None:
        """Format KRaft storage once; a formatted data dir is reused as is."""
        if (self.data_dir / "meta.properties").exists():
            return
        command = self.jars.java_command(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.config_path),
            "--standalone",
            *(("--add-scram", scram_credential(self.settings)) if self.settings.kafka_sasl_ssl_port else ()),
            jvm=["-Xmx256m", "-Dhookstream.kafka.log.level=WARN"],
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevStackError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr)[-4000:]
            )

    def check_ports(self) -> None:
        s = self.settings
        ensure_port_free(s.host, s.kafka_port, what="Kafka broker", setting="HOOKSTREAM_DEV_KAFKA_PORT")
        ensure_port_free(
            s.host, s.kafka_controller_port, what="Kafka controller", setting="HOOKSTREAM_DEV_KAFKA_CONTROLLER_PORT"
        )
        if s.kafka_sasl_ssl_port:
            ensure_port_free(
                s.host,
                s.kafka_sasl_ssl_port,
                what="Kafka SASL_SSL listener",
                setting="HOOKSTREAM_DEV_KAFKA_SASL_SSL_PORT",
            )

    def start(self) -> bool:
        """Start the broker unless it is running; return True if a process was started.

        Returns once the process is launched; ``wait_ready`` waits for it to answer.
        """
        if self.pid is not None:
            return False
        self.check_ports()
        s = self.settings
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_server_properties(s, self.data_dir))
        self._format()
        jvm = [*s.kafka_heap.split(), *s.kafka_jvm_opts.split(), "-Djava.awt.headless=true"]
        command = self.jars.java_command("kafka.Kafka", str(self.config_path), jvm=jvm)
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                start_new_session=True,  # Ctrl-C is ours to handle, not the JVM's
            )
        self.pid_path.write_text(f"{proc.pid}\n")
        return True

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.kafka_ready_timeout_ms / 1000
        admin = AdminClient(client_config(self.bootstrap))
        while time.monotonic() < deadline:
            if self.pid is None:
                raise DevStackError(
                    f"the Kafka broker exited while starting; last lines of {self.log_path}:\n"
                    + log_tail(self.log_path)
                )
            try:
                admin.list_topics(timeout=0.5)
                return
            except KafkaException:
                time.sleep(0.1)
        raise DevStackError(
            f"the Kafka broker did not answer on {self.bootstrap} within"
            f" {self.settings.kafka_ready_timeout_ms} ms; last lines of {self.log_path}:\n" + log_tail(self.log_path)
        )

    def stop(self) -> bool:
        pid = self.pid
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        terminate(pid, timeout_ms=self.settings.stop_timeout_ms)
        self.pid_path.unlink(missing_ok=True)
        return True

"""Every Kafka client on a secured Kafka: a broker of this module's own with a SASL_SSL listener
(SCRAM-SHA-512 over TLS, a certificate signed by a CA made here), as a managed Kafka has.

- Webhooks flow ingress → normalizer → delivery → a partner with every service a real
  `hookstream run` process that knows the broker only by its SASL_SSL address: producers, topic
  admin, readiness checks and the outbox relay (librdkafka), the consumers (aiokafka).
- A wrong password and a CA that did not sign the broker's certificate are one `error:` line naming
  the setting, at once, not a wait for a broker that "does not answer".
- The consumer runtime's aiokafka client names the same two faults; Kafka's own tools
  (`hookstream dev kafka-tool`) get the settings as a client properties file; `hookstream setup`
  creates every topic through the secured listener.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hookstream.consumer import ConsumerService
from hookstream.consumer.records import Record
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.kafka import TopicAdmin, TopicSpec
from hookstream.settings import KafkaConnection, KafkaSecurity
from hookstream_tools.devstack.jars import KafkaJars
from hookstream_tools.devstack.kafka import LocalKafka
from hookstream_tools.devstack.process import free_port
from hookstream_tools.devstack.settings import DevStackSettings
from hookstream_tools.devstack.stack import first_produce
from pydantic import SecretStr
from standardwebhooks import Webhook

from tests.kafka_tls import STOREPASS, BrokerTls, broker_tls
from tests.order_load import Instance
from tests.partner import running_partner
from tests.service_processes import logs, pipeline_env
from tests.signing import signed_sample, write_config
from tests.waiting import until

pytestmark = [pytest.mark.timeout(420)]

USER, PASSWORD = "hookstream", "sasl-ssl-test-password"
PARTNER_SECRET = "whsec_" + base64.b64encode(b"sasl-ssl-partner-test-key-32byte").decode()
SHOPIFY_ORDER = "shopify:5612345678901"


@dataclass(frozen=True)
class SecuredKafka:
    connection: KafkaConnection
    tls: BrokerTls

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of a process that uses this Kafka (the developer's own KAFKA_* left out)."""
        security = self.connection.security
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
            "KAFKA_BOOTSTRAP_SERVERS": self.connection.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": security.protocol,
            "KAFKA_SASL_MECHANISM": security.sasl_mechanism,
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": PASSWORD,
            "KAFKA_SSL_CA_FILE": str(self.tls.ca),
            **overrides,
        }

    def with_security(self, **changes: Any) -> KafkaConnection:
        return replace(self.connection, security=replace(self.connection.security, **changes))


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    folder = tmp_path_factory.mktemp("sasl-ssl")
    tls = broker_tls(folder / "tls")
    settings = DevStackSettings(
        state_dir=folder / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_sasl_ssl_port=free_port(),
        kafka_ssl_keystore=tls.keystore,
        kafka_ssl_keystore_password=SecretStr(STOREPASS),
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_heap="-Xms256m -Xmx512m",
    )
    jars = KafkaJars(settings.cache_dir)
    jars.resolve()
    broker = LocalKafka(settings, jars)
    broker.start()
    try:
        broker.wait_ready()  # on the PLAINTEXT listener; everything below uses the SASL_SSL one only
        assert settings.kafka_sasl_ssl_bootstrap is not None
        security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", USER, SecretStr(PASSWORD), tls.ca)
        connection = KafkaConnection(settings.kafka_sasl_ssl_bootstrap, security)
        asyncio.run(first_produce(connection, timeout_ms=60_000))  # an idempotent produce, acknowledged
        yield SecuredKafka(connection, tls)
    finally:
        broker.stop()


async def test_webhooks_flow_from_ingress_to_a_partner_over_sasl_ssl(
    secured_kafka: SecuredKafka, migrated_database_url: str, unique_name: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    env, topics = pipeline_env(unique_name)
    base = {**secured_kafka.env(), "DATABASE_URL": migrated_database_url, "HOOKSTREAM_LOG_LEVEL": "WARNING"}
    config = write_config(tmp_path / "ingress.toml", topic=topics["raw"])
    services = ("ingress", "normalizer", "delivery")

    async with running_partner() as partner:
        added = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "hookstream", "subscriptions", "add", "--name", "erp"]  # noqa: RUF005
            + ["--url", f"{partner.url}/erp", "--events", "order.*", "--secret", PARTNER_SECRET],
            env=base,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        running = [
            Instance(
                name,
                {**base, **env.get(name, {})},
                tmp_path,
                0,
                *(("--config", str(config)) if name == "ingress" else ()),
            )
            for name in services
        ]
        try:
            async with aiohttp.ClientSession() as http:

                async def all_ready() -> bool:
                    return all([await i.ready(http) for i in running])

                await until(all_ready, 120, lambda: f"every service ready over SASL_SSL\n{logs(tmp_path)}")
                ingress = f"http://127.0.0.1:{running[0].port}/webhooks"
                for sample in ("shopify_orders_create", "shopify_orders_paid"):
                    channel, headers, body, _ = signed_sample(sample)
                    async with http.post(f"{ingress}/{channel}", data=body, headers=headers) as answer:
                        assert answer.status == 200, await answer.text()
                await until(
                    lambda: len(partner.at("/erp")) >= 2, 60, lambda: f"two deliveries to the partner\n{logs(tmp_path)}"
                )
        finally:
            for instance in running:
                instance.proc.terminate()
            exits = [await asyncio.to_thread(i.proc.wait, 45) for i in running]

    verify = Webhook(PARTNER_SECRET).verify
    delivered = [verify(r["body"], {k.lower(): v for k, v in r["headers"].items()}) for r in partner.at("/erp")]
    assert [(p["order_id"], p["type"]) for p in delivered] == [
        (SHOPIFY_ORDER, "order.created"),
        (SHOPIFY_ORDER, "order.paid"),
    ]
    assert exits == [0, 0, 0], logs(tmp_path)
    async with Database(migrated_database_url) as db, db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM outbox")
        assert (await cur.fetchone() or {}).get("n") == 0  # the relay published over SASL_SSL too
    print(f"SASL_SSL pipeline: started, delivered and stopped in {time.monotonic() - started:.1f} s")


def _run_normalizer(env: dict[str, str], tmp_path: Path) -> tuple[int, list[str], float]:
    """`hookstream run normalizer` with ``env``: exit code, its `error:` lines, seconds it took."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "hookstream", "run", "normalizer", "--health-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,  # a hang fails here, not after the test's own timeout
        cwd=tmp_path,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return result.returncode, errors, time.monotonic() - started


def test_a_wrong_password_is_one_line_naming_the_settings_at_once(
    secured_kafka: SecuredKafka, migrated_database_url: str, tmp_path: Path
) -> None:
    env = secured_kafka.env(KAFKA_SASL_PASSWORD="not-the-password", DATABASE_URL=migrated_database_url)
    code, errors, took = _run_normalizer(env, tmp_path)
    assert code == 1
    address = secured_kafka.connection.bootstrap_servers
    assert errors == [
        f"error: Kafka at {address} refused the SASL credentials of 'hookstream'"
        " (KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD, mechanism SCRAM-SHA-512)"
    ]
    assert took < 30  # the broker-wait is 15 s: this did not wait for it


def test_a_certificate_the_ca_file_did_not_sign_is_one_line_naming_the_setting(
    secured_kafka: SecuredKafka, migrated_database_url: str, tmp_path: Path
) -> None:
    other = secured_kafka.tls.other_ca
    env = secured_kafka.env(KAFKA_SSL_CA_FILE=str(other), DATABASE_URL=migrated_database_url)
    code, errors, took = _run_normalizer(env, tmp_path)
    assert code == 1
    address = secured_kafka.connection.bootstrap_servers
    assert errors == [f"error: the certificate of Kafka at {address} is not trusted by KAFKA_SSL_CA_FILE ({other})"]
    assert took < 30


async def test_the_consumer_runtime_names_a_refused_login_and_an_untrusted_certificate(
    secured_kafka: SecuredKafka, migrated_database_url: str, unique_name: str
) -> None:
    topic = f"{unique_name}.in"
    await asyncio.to_thread(TopicAdmin(secured_kafka.connection).ensure_topics, [TopicSpec(topic, 1, 3_600_000)])

    async def handler(record: Record) -> None:
        return None

    cases = [
        (secured_kafka.with_security(sasl_password=SecretStr("wrong")), "refused the SASL credentials of 'hookstream'"),
        (secured_kafka.with_security(ssl_ca_file=secured_kafka.tls.other_ca), "is not trusted by KAFKA_SSL_CA_FILE"),
    ]
    async with Database(migrated_database_url) as db:
        for connection, expected in cases:
            consumer = ConsumerService(
                f"sasl-{unique_name}", topic, handler, bootstrap_servers=connection, db=db, create_topics=False
            )
            try:
                with pytest.raises(ConfigurationError, match=expected):
                    await asyncio.wait_for(consumer.start(), 60)
            finally:
                await consumer.producer.stop(timeout_ms=1_000)
        # The right settings: it creates its topics and joins its group over SASL_SSL.
        consumer = ConsumerService(
            f"sasl-{unique_name}", topic, handler, bootstrap_servers=secured_kafka.connection, db=db
        )
        async with consumer:

            async def joined() -> bool:
                return (await consumer.ready())[0][1]

            await until(joined, 60, "the consumer to join its group over SASL_SSL")


def test_kafka_tools_get_the_security_settings_as_a_properties_file(
    secured_kafka: SecuredKafka, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "hookstream", "dev", "kafka-tool", "topics", "--list"]
    listed = subprocess.run(command, env=secured_kafka.env(), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "hookstream.dev.ready" in listed.stdout.split(), listed.stdout  # what first_produce made, read over SASL_SSL
    assert not list(Path(tempfile.gettempdir()).glob("hookstream-kafka-tool-*"))  # the password file is gone


def test_the_setup_job_creates_every_topic_over_sasl_ssl(
    secured_kafka: SecuredKafka, migrated_database_url: str, tmp_path: Path
) -> None:
    env = secured_kafka.env(DATABASE_URL=migrated_database_url)
    command = [sys.executable, "-m", "hookstream", "setup"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "topics:" in done.stdout, done.stdout
    admin = TopicAdmin(secured_kafka.connection)
    assert [admin.partition_count(t) for t in ("webhooks.raw.v1", "orders.events.v1")] == [12, 6]

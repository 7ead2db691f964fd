"""The Kafka security settings: read and checked once, spelt for each client, refusals put in words."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError
from confluent_kafka import KafkaError
from hookstream.errors import ConfigurationError, DevStackError
from hookstream.kafka.admin import client_config
from hookstream.kafka.security import (
    aiokafka_options,
    aiokafka_refusal,
    java_client_properties,
    librdkafka_config,
    librdkafka_refusal,
    properties_text,
)
from hookstream.lifecycle import LifecycleGroup
from hookstream.registry import ServiceContext, build_with
from hookstream.sensors import Sensors
from hookstream.settings import PLAINTEXT, KafkaConnection, KafkaSecurity, StackSettings
from hookstream_tools.devstack.kafka import _server_properties, scram_credential
from hookstream_tools.devstack.settings import DevStackSettings
from hookstream_tools.devstack.tool_config import command_config, names_a_config
from pydantic import SecretStr

KAFKA_ENV = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_FILE",
    "KAFKA_SSL_CERT_FILE",
    "KAFKA_SSL_KEY_FILE",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KAFKA_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")


def _stack(**env: str) -> StackSettings:
    return StackSettings(_env_file=None, **env)  # type: ignore[arg-type]  # aliases, as the environment has them


def _file(tmp_path: Path, name: str, text: str = "x") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SASL_SSL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc", SecretStr("pw"), Path("/etc/kafka/ca.pem"))


def test_nothing_set_is_plaintext_and_a_bare_address_stays_what_it_was() -> None:
    connection = _stack().kafka_connection()
    assert connection == KafkaConnection("broker:9093", PLAINTEXT)
    assert str(connection) == "broker:9093"
    assert KafkaConnection.of("a:1") == KafkaConnection("a:1")
    assert KafkaConnection.of(connection) is connection
    config = client_config("a:1", **{"group.id": "g"})
    assert {k: v for k, v in config.items() if k != "logger"} == {"bootstrap.servers": "a:1", "group.id": "g"}
    assert aiokafka_options(PLAINTEXT) == {}


def test_sasl_ssl_from_the_environment(tmp_path: Path) -> None:
    ca = _file(tmp_path, "ca.pem")
    security = _stack(
        KAFKA_SECURITY_PROTOCOL="sasl_ssl",  # any case
        KAFKA_SASL_MECHANISM="scram-sha-512",
        KAFKA_SASL_USERNAME="svc",
        KAFKA_SASL_PASSWORD="pw",
        KAFKA_SSL_CA_FILE=str(ca),
    ).kafka_security()
    assert security == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc", SecretStr("pw"), ca)
    assert "pw" not in repr(security)
    assert security.describe() == "SASL_SSL, SCRAM-SHA-512 as svc"
    assert _stack(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p")
    defaulted = _stack(KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p")
    assert defaulted.kafka_security().sasl_mechanism == "PLAIN"
    # Blank is unset (a Kubernetes manifest that lists every variable).
    assert _stack(KAFKA_SASL_USERNAME="", KAFKA_SSL_CA_FILE=" ").kafka_security() == PLAINTEXT


SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
            "KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        (
            {**SASL, "KAFKA_SSL_CA_FILE": "{ca}"},
            "KAFKA_SSL_CA_FILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "{ca}"},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "/nowhere/ca.pem"},
            "KAFKA_SSL_CA_FILE=/nowhere/ca.pem is not a readable file",
        ),
    ],
)
def test_settings_that_do_not_fit_together_name_what_to_fix(tmp_path: Path, env: dict[str, str], message: str) -> None:
    ca = _file(tmp_path, "ca.pem")
    stack = _stack(**{k: v.format(ca=ca) for k, v in env.items()})
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stack.kafka_connection()


def test_librdkafka_gets_the_protocol_the_login_and_the_files() -> None:
    assert librdkafka_config(SASL_SSL) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "pw",
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }
    mtls = KafkaSecurity("SSL", ssl_cert_file=Path("c.pem"), ssl_key_file=Path("k.pem"))
    assert librdkafka_config(mtls) == {
        "security.protocol": "SSL",
        "ssl.certificate.location": "c.pem",
        "ssl.key.location": "k.pem",
    }
    connection = KafkaConnection("b:1", SASL_SSL)
    assert client_config(connection, **{"acks": "all"})["sasl.username"] == "svc"


def test_aiokafka_gets_the_login_and_a_verifying_tls_context(tmp_path: Path) -> None:
    options = aiokafka_options(KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "svc", SecretStr("pw")))
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    broken = KafkaSecurity("SSL", ssl_ca_file=_file(tmp_path, "ca.pem", "not a certificate"))
    with pytest.raises(ConfigurationError, match="KAFKA_SSL_CA_FILE / KAFKA_SSL_CERT_FILE / KAFKA_SSL_KEY_FILE"):
        aiokafka_options(broken)


def test_java_tools_get_a_properties_file_with_a_quoted_login() -> None:
    security = KafkaSecurity("SASL_SSL", "PLAIN", "svc", SecretStr('p"w\\ü'), Path("/ca.pem"))
    properties = java_client_properties(security, keystore=Path("/tmp/ks.pem"))
    assert properties == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": (
            'org.apache.kafka.common.security.plain.PlainLoginModule required username="svc" password="p\\"w\\\\ü";'
        ),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/ca.pem",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": "/tmp/ks.pem",
    }
    text = properties_text({"a key": " x=y#", "k": "line\nnext\\ü😀"})
    assert text == "a\\ key=\\ x=y#\nk=line\\nnext\\\\\\u00fc\\ud83d\\ude00\n"
    assert text.isascii()


def test_command_config_is_private_and_gone_afterwards(tmp_path: Path) -> None:
    key = _file(tmp_path, "key.pem", "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n")
    cert = _file(tmp_path, "cert.pem", "-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----\n")
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "svc", SecretStr("pw"), None, cert, key)
    with command_config(security) as path:
        assert path.parent.stat().st_mode & 0o077 == 0
        text = path.read_text(encoding="latin-1")
        keystore = path.parent / "client-keystore.pem"
        assert f"ssl.keystore.location={keystore}\n" in text
        assert keystore.read_text() == key.read_text() + cert.read_text()
        assert 'ScramLoginModule required username="svc" password="pw";' in text
    assert not path.parent.exists()
    pkcs1 = KafkaSecurity("SSL", ssl_cert_file=cert, ssl_key_file=_file(tmp_path, "rsa.pem", "BEGIN RSA PRIVATE KEY"))
    with pytest.raises(ConfigurationError, match="is not PKCS#8"), command_config(pkcs1):
        pass
    assert names_a_config(["--describe", "--command-config", "x"])
    assert names_a_config(["--consumer.config=x"])
    assert not names_a_config(["--describe", "--all-groups"])


def test_refusals_in_words_that_name_the_setting() -> None:
    kafka = KafkaConnection("b:9093", SASL_SSL)

    def rd(code: int, text: str) -> str | None:
        refused = librdkafka_refusal(kafka, KafkaError(code, text))
        return str(refused) if refused else None

    assert rd(KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed") == (
        "Kafka at b:9093 refused the SASL credentials of 'svc'"
        " (KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD, mechanism SCRAM-SHA-512)"
    )
    assert rd(
        KafkaError._AUTHENTICATION, "Broker: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN"
    ) == ("Kafka at b:9093 does not offer the SASL mechanism SCRAM-SHA-512 (KAFKA_SASL_MECHANISM)")
    untrusted = "the certificate of Kafka at b:9093 is not trusted by KAFKA_SSL_CA_FILE (/etc/kafka/ca.pem)"
    assert (
        rd(KafkaError._SSL, "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed") == untrusted
    )
    assert rd(KafkaError._TRANSPORT, "error:0A000086:SSL routines::certificate verify failed") == untrusted
    # A broker away or restarting is waited for, not named a configuration error.
    assert rd(KafkaError._TRANSPORT, "Connect to ipv4#127.0.0.1:9093 failed: Connection refused") is None
    assert rd(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down") is None

    def aio(exc: BaseException, security: KafkaSecurity = SASL_SSL) -> str | None:
        refused = aiokafka_refusal(KafkaConnection("b:9093", security), exc)
        return str(refused) if refused else None

    assert "refused the SASL credentials of 'svc'" in (aio(SaslAuthenticationFailed("invalid credentials")) or "")
    assert "KAFKA_SASL_MECHANISM" in (aio(UnsupportedSaslMechanismError()) or "")
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate in certificate chain")
    assert aio(verify) == untrusted
    assert aio(verify, KafkaSecurity("SSL")) == (
        "the certificate of Kafka at b:9093 is not trusted by the system's CA certificates:"
        " set KAFKA_SSL_CA_FILE to the CA that signed it"
    )
    mismatch = ssl.SSLCertVerificationError(1, "certificate verify failed: Hostname mismatch, not valid for 'b'")
    assert "KAFKA_BOOTSTRAP_SERVERS" in (aio(mismatch) or "")
    assert aio(ConnectionRefusedError()) is None


def test_the_entrypoints_connection_reaches_the_service_build() -> None:
    got: dict[str, Any] = {}

    def service(bootstrap_servers: Any, database_url: str, **options: Any) -> LifecycleGroup:
        got["kafka"] = bootstrap_servers
        return LifecycleGroup("x", [])

    connection = KafkaConnection("b:9093", SASL_SSL)
    build_with(service)(ServiceContext(connection, "postgresql://db/x", None, Sensors()))
    assert got["kafka"] is connection


def test_the_local_broker_can_add_a_sasl_ssl_listener(tmp_path: Path) -> None:
    keystore = _file(tmp_path, "broker.p12")
    settings = DevStackSettings(
        kafka_port=1, kafka_controller_port=2, kafka_sasl_ssl_port=3, kafka_ssl_keystore=keystore,
        kafka_ssl_keystore_password=SecretStr("ks"), kafka_sasl_password=SecretStr("pw"),
    )  # fmt: skip
    lines = dict(line.split("=", 1) for line in _server_properties(settings, tmp_path).splitlines())
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL_SSL://127.0.0.1:3"
    assert lines["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:3"
    assert lines["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert lines["inter.broker.listener.name"] == "PLAINTEXT"
    assert lines["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert lines["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    )
    assert lines["listener.name.sasl_ssl.ssl.keystore.type"] == "PKCS12"
    assert lines["listener.name.sasl_ssl.ssl.keystore.password"] == "ks"
    pem = settings.model_copy(update={"kafka_ssl_keystore": _file(tmp_path, "broker.pem")})
    assert "listener.name.sasl_ssl.ssl.keystore.type=PEM\n" in _server_properties(pem, tmp_path)
    assert scram_credential(settings) == 'SCRAM-SHA-512=[name=hookstream,password="pw"]'
    with pytest.raises(DevStackError, match="without any of"):
        scram_credential(settings.model_copy(update={"kafka_sasl_password": SecretStr("a,b")}))
    with pytest.raises(DevStackError, match="HOOKSTREAM_DEV_KAFKA_SSL_KEYSTORE"):
        _server_properties(settings.model_copy(update={"kafka_ssl_keystore": None}), tmp_path)
    plain = DevStackSettings(kafka_port=1, kafka_controller_port=2)
    assert "SASL_SSL" not in _server_properties(plain, tmp_path)

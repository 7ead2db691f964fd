"""Typed settings, read once at startup and passed down.

Nothing here reads the environment at import time: entrypoints call the classes
(``StackSettings()``) and hand the instances to the code that needs them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hookstream.errors import ConfigurationError

DEFAULT_STACK_ENV = Path(".hookstream/stack.env")


def _list_from_env(value: Any) -> Any:
    if isinstance(value, str):  # from the environment: "5s,1m" or a JSON list
        text = value.strip()
        return json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
    return value


# A list setting that the environment may give as "a,b" or as a JSON list.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_list_from_env)]


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _blank_is_unset(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of a process encrypts and authenticates: built once at startup from the
    ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` / ``KAFKA_SSL_*`` settings (``StackSettings.kafka_connection``)
    and handed down with the bootstrap address. ``hookstream.kafka.security`` turns it into each client's
    options (librdkafka, aiokafka, Kafka's own Java tools)."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = None  # None with TLS: the system's CA certificates
    ssl_cert_file: Path | None = None  # client certificate (mTLS), PEM
    ssl_key_file: Path | None = None  # its private key, PEM

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def describe(self) -> str:
        """E.g. ``SASL_SSL, SCRAM-SHA-512 as hookstream`` (never the password)."""
        if not self.sasl:
            return self.protocol
        return f"{self.protocol}, {self.sasl_mechanism} as {self.sasl_username}"


PLAINTEXT = KafkaSecurity()


@dataclass(frozen=True)
class KafkaConnection:
    """The brokers and how to reach them: what the entrypoint gives every service and client."""

    bootstrap_servers: str
    security: KafkaSecurity = PLAINTEXT

    def __str__(self) -> str:
        return self.bootstrap_servers

    @staticmethod
    def of(brokers: Brokers) -> KafkaConnection:
        return brokers if isinstance(brokers, KafkaConnection) else KafkaConnection(brokers)


# What every Kafka client takes as ``bootstrap_servers``: a bare address (PLAINTEXT, as in tests and
# on the local stack) or a ``KafkaConnection`` carrying the address and its security.
Brokers: TypeAlias = str | KafkaConnection


class StackSettings(BaseSettings):
    """Where the shared servers are.

    Environment variables win; otherwise services read the ``stack.env`` that
    ``hookstream dev up`` wrote. The launcher itself reads the environment only
    (``StackSettings(_env_file=None)``): unset there means "start the local server".
    """

    model_config = SettingsConfigDict(extra="ignore", env_file=DEFAULT_STACK_ENV)

    kafka_bootstrap_servers: str | None = Field(default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # A secured Kafka (every managed one): TLS and/or SASL for every client of the process.
    kafka_security_protocol: Annotated[SecurityProtocol, BeforeValidator(_upper)] = Field(
        default="PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Annotated[SaslMechanism | None, BeforeValidator(_blank_is_unset), BeforeValidator(_upper)] = (
        Field(default=None, validation_alias="KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: Annotated[str | None, BeforeValidator(_blank_is_unset)] = Field(
        default=None, validation_alias="KAFKA_SASL_USERNAME"
    )
    kafka_sasl_password: Annotated[SecretStr | None, BeforeValidator(_blank_is_unset)] = Field(
        default=None, validation_alias="KAFKA_SASL_PASSWORD"
    )
    kafka_ssl_ca_file: Annotated[Path | None, BeforeValidator(_blank_is_unset)] = Field(
        default=None, validation_alias="KAFKA_SSL_CA_FILE"
    )
    kafka_ssl_cert_file: Annotated[Path | None, BeforeValidator(_blank_is_unset)] = Field(
        default=None, validation_alias="KAFKA_SSL_CERT_FILE"
    )
    kafka_ssl_key_file: Annotated[Path | None, BeforeValidator(_blank_is_unset)] = Field(
        default=None, validation_alias="KAFKA_SSL_KEY_FILE"
    )

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise ConfigurationError(
                "KAFKA_BOOTSTRAP_SERVERS is not set and .hookstream/stack.env does not exist:"
                " start the local stack with `hookstream dev up` or export KAFKA_BOOTSTRAP_SERVERS"
            )
        return self.kafka_bootstrap_servers

    def kafka_connection(self) -> KafkaConnection:
        """The bootstrap address (required) with its security, checked: what an entrypoint hands down."""
        return KafkaConnection(self.require_kafka(), self.kafka_security())

    def kafka_security(self) -> KafkaSecurity:
        """The security settings as one value, refused with the setting to fix when they do not fit
        together (credentials without SASL would otherwise connect unauthenticated, in the clear)."""
        protocol = self.kafka_security_protocol
        security = KafkaSecurity(
            protocol,
            self.kafka_sasl_mechanism or "PLAIN",
            self.kafka_sasl_username,
            self.kafka_sasl_password,
            self.kafka_ssl_ca_file,
            self.kafka_ssl_cert_file,
            self.kafka_ssl_key_file,
        )
        sasl_set = [
            name
            for name, value in (
                ("KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                ("KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
            )
            if value is not None
        ]
        files = {
            "KAFKA_SSL_CA_FILE": self.kafka_ssl_ca_file,
            "KAFKA_SSL_CERT_FILE": self.kafka_ssl_cert_file,
            "KAFKA_SSL_KEY_FILE": self.kafka_ssl_key_file,
        }
        tls_set = [name for name, value in files.items() if value is not None]
        if security.sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            raise ConfigurationError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if not security.sasl and sasl_set:
            raise ConfigurationError(
                f"{' / '.join(sasl_set)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL:"
                " set KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
            )
        if not security.tls and tls_set:
            raise ConfigurationError(
                f"{' / '.join(tls_set)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS:"
                " set KAFKA_SECURITY_PROTOCOL=SSL (or SASL_SSL)"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ConfigurationError(
                "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (the client certificate and its key, PEM)"
            )
        for name, path in files.items():
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise ConfigurationError(f"{name}={path} is not a readable file")
        return security

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigurationError(
                "DATABASE_URL is not set and .hookstream/stack.env does not exist:"
                " start the local stack with `hookstream dev up` or export DATABASE_URL"
            )
        return self.database_url


class KafkaSettings(BaseSettings):
    """Client options shared by every service (units in the names, as in aiokafka)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_KAFKA_", extra="ignore")

    client_id: str = "hookstream"
    connect_timeout_ms: int = 10_000
    request_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 30_000
    linger_ms: int = 2
    queue_max_messages: int = 100_000
    queue_max_kbytes: int = 65_536
    default_partitions: int = 6
    # How often librdkafka reports its statistics; readiness reads the idempotent producer's state there.
    statistics_interval_ms: int = 5_000
    default_retention_ms: int = 7 * 24 * 3600 * 1000


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_DB_", extra="ignore")

    pool_min_size: int = 1
    pool_max_size: int = 10
    connect_timeout_ms: int = 10_000


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_LOG_", extra="ignore")

    level: str = "INFO"
    json_format: bool = Field(default=True, validation_alias="HOOKSTREAM_LOG_JSON")

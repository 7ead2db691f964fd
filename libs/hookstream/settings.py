"""Typed settings, read once at startup and passed down.

Nothing here reads the environment at import time: entrypoints call the classes
(``StackSettings()``) and hand the instances to the code that needs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
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


class StackSettings(BaseSettings):
    """Where the shared servers are.

    Environment variables win; otherwise services read the ``stack.env`` that
    ``hookstream dev up`` wrote. The launcher itself reads the environment only
    (``StackSettings(_env_file=None)``): unset there means "start the local server".
    """

    model_config = SettingsConfigDict(extra="ignore", env_file=DEFAULT_STACK_ENV)

    kafka_bootstrap_servers: str | None = Field(default=None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise ConfigurationError(
                "KAFKA_BOOTSTRAP_SERVERS is not set and .hookstream/stack.env does not exist:"
                " start the local stack with `hookstream dev up` or export KAFKA_BOOTSTRAP_SERVERS"
            )
        return self.kafka_bootstrap_servers

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

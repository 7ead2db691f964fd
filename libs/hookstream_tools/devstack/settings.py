"""Settings of the local Kafka + PostgreSQL launcher (``hookstream dev``): tooling, not runtime."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "hookstream"


class DevStackSettings(BaseSettings):
    """The local Kafka + PostgreSQL launcher (``hookstream dev``)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_DEV_", extra="ignore")

    state_dir: Path = Path(".hookstream")
    # Jars live outside the work tree so clean clones and `make clean` keep them.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
    postgres_database: str = "hookstream"
    kafka_heap: str = "-Xms1g -Xmx1g"  # kafka-server-start.sh's default
    # Full tiered JIT: C1 only (TieredStopAtLevel=1) started no faster here and cost the warm broker ~40 %
    # more CPU per request (15.3 against 21.2 CPU-s per 1,000 events in bench/e2e.py --workflows at 20/s).
    kafka_jvm_opts: str = "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -Xshare:auto"
    kafka_ready_timeout_ms: int = 60_000
    # An extra client listener with SASL_SSL (SCRAM-SHA-512 over TLS) beside the PLAINTEXT one, as a managed
    # Kafka has: set the port, the broker's key store and the password; the user is created when the
    # storage is formatted (a fresh state dir). The controller and the inter-broker listener stay PLAINTEXT.
    kafka_sasl_ssl_port: int | None = None
    # The broker's key and certificate chain: PEM (key then chain, one file, unencrypted key) by the
    # name's suffix .pem, otherwise PKCS12 opened with kafka_ssl_keystore_password.
    kafka_ssl_keystore: Path | None = None
    kafka_ssl_keystore_password: SecretStr | None = None
    kafka_sasl_username: str = "hookstream"
    kafka_sasl_password: SecretStr | None = None
    postgres_ready_timeout_ms: int = 60_000
    stop_timeout_ms: int = 30_000

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def kafka_sasl_ssl_bootstrap(self) -> str | None:
        return f"{self.host}:{self.kafka_sasl_ssl_port}" if self.kafka_sasl_ssl_port else None

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.postgres_port}/{self.postgres_database}"

    @property
    def stack_env_path(self) -> Path:
        return self.state_dir / "stack.env"

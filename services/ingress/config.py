"""Channels and their secrets, from the TOML file named by ``HOOKSTREAM_CONFIG``.

Secrets may sit in the file (``secrets = [...]``) or, better, in environment
variables named by ``secrets_env = [...]``; both lists are active at once, which is
how a secret is rotated without dropping a request.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from hookstream.errors import ConfigurationError
from hookstream_schemas import topics
from hookstream_schemas.topics import TopicSpec
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ChannelKind = Literal["shopify", "woocommerce", "stripe", "standard", "hmac"]
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ChannelKind
    secrets: list[SecretStr] = Field(default_factory=list)
    secrets_env: list[str] = Field(default_factory=list)
    tolerance_s: int = Field(default=300, gt=0)
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    rate_limit_burst: int | None = Field(default=None, gt=0)
    # Custom channels: where the payload keeps what we need (dotted paths into the JSON body).
    order_id_field: str | None = None
    event_type_field: str | None = None
    event_id_field: str | None = None
    # Stripe: the channel whose orders a payment's metadata.order_id refers to, when metadata has no channel.
    order_channel: str | None = None

    @model_validator(mode="after")
    def _custom_fields(self) -> ChannelConfig:
        if self.kind in ("standard", "hmac") and not self.event_type_field:
            raise ValueError("custom channels (kind standard or hmac) need event_type_field, e.g. 'type'")
        return self

    def secret_values(self, name: str) -> list[str]:
        values = [s.get_secret_value() for s in self.secrets]
        for var in self.secrets_env:
            value = os.environ.get(var)
            if value:
                values.append(value)
        if not values:
            raise ConfigurationError(
                f"channel {name!r} has no secret: set one of {self.secrets_env or ['<VAR>']} in the environment"
                " or `secrets = [...]` in the config file"
            )
        return values


class IngressOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str = topics.RAW.name
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    publish_timeout_ms: int = Field(default=5000, gt=0)
    max_in_flight: int = Field(default=10_000, gt=0)
    topic_partitions: int = Field(default=topics.RAW.partitions, gt=0)
    topic_retention_ms: int = Field(default=topics.RAW.retention_ms, gt=0)

    @property
    def topic_spec(self) -> TopicSpec:
        return TopicSpec(self.topic, self.topic_partitions, self.topic_retention_ms)


class IngressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ingress: IngressOptions = Field(default_factory=IngressOptions)
    channels: dict[str, ChannelConfig]

    @model_validator(mode="after")
    def _names(self) -> IngressConfig:
        for name in self.channels:
            if not _CHANNEL_NAME.match(name):
                raise ValueError(f"channel name {name!r} must be lower-case letters, digits, '-' or '_'")
        return self


class IngressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_", extra="ignore")

    config: Path = Path("hookstream.toml")
    ingress_workers: int = 1
    ingress_probe_port: int | None = None  # set by `hookstream run ingress`: where probes and /metrics are served
    no_migrate: bool = False  # set by `--no-migrate`: the topic exists already


def load_config(path: Path) -> IngressConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"config file {path} does not exist; set HOOKSTREAM_CONFIG (see config/hookstream.example.toml)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from None
    try:
        config = IngressConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from None
    for name, channel in config.channels.items():
        channel.secret_values(name)  # a channel without any secret is a start-up error, not a 401 storm
    return config

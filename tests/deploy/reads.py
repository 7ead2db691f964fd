"""What each hookstream process reads from its environment, derived from the code the processes run:
the registry's settings classes (with their env prefixes, aliases and nested settings, such as the
keyring's HOOKSTREAM_SECRETS_KEYS), StackSettings for the servers, and for ingress the variables its
channels file names (``secrets_env``). The Secrets' split is checked against this: a pod may hold a
Secret key only if its process reads it."""

from __future__ import annotations

import tomllib
from functools import cache

from hookstream import registry
from hookstream.connectors.email import MailSettings
from hookstream.settings import StackSettings
from hookstream.workflow import SystemSettings
from hookstream_services.ingress.config import IngressConfig
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

SETUP = "hookstream-setup"  # the Job: `hookstream setup`


def settings_env(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (upper case, as the manifests write them)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        else:
            names.add(f"{prefix}{field_name}".upper())
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= settings_env(field.annotation)  # built by its default factory: reads its own variables
    return names


STACK = settings_env(StackSettings)
KAFKA = {name for name in STACK if name.startswith("KAFKA_")}  # every Kafka client's: address, TLS, SASL
assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"} <= STACK, STACK


def channel_secrets(channels_toml: str) -> set[str]:
    """The variables ingress reads its channels' webhook secrets from (``secrets_env``)."""
    config = IngressConfig.model_validate(tomllib.loads(channels_toml))
    return {var for channel in config.channels.values() for var in channel.secrets_env}


def reads(process: str, channels_toml: str) -> set[str]:
    """What ``hookstream run <process>`` (or, for the setup Job, ``hookstream setup``) reads."""
    if process == SETUP:
        return set(STACK)  # migrations and topics: the servers only
    spec = registry.discover()[process]
    names = KAFKA | settings_env(spec.settings)
    if spec.build is not None:  # a consumer service: the entrypoint requires DATABASE_URL
        names.add("DATABASE_URL")
    if process == "ingress":
        names |= channel_secrets(channels_toml)
    return names


@cache
def outbound() -> frozenset[str]:
    """The services that call URLs outside: those with an outbound SSRF guard (``allow_targets``:
    delivery's partner endpoints, admin's test sends and alerting) and the workflows that talk to an
    external system over HTTP or send mail."""
    found = set()
    for name, spec in registry.discover().items():
        settings = spec.settings
        if "allow_targets" in settings.model_fields or issubclass(settings, SystemSettings | MailSettings):
            found.add(name)
    return frozenset(found - {"sandbox"})

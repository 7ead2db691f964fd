"""The service registry: every service declares one ``ServiceSpec``, found through an entry point.

A service package registers itself with one line in its distribution's metadata::

    [project.entry-points."hookstream.services"]
    crm = "hookstream_services.crm.spec:SPEC"

``hookstream run``, ``hookstream dlq``, ``hookstream db migrate``, ``hookstream setup`` and the
admin iterate ``discover()``; nothing finds a service by importing a module path of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

from hookstream_schemas.topics import TopicSpec
from pydantic_settings import BaseSettings

from hookstream.db.migrations import Migration, packaged_migrations
from hookstream.errors import ConfigurationError, UnknownService
from hookstream.lifecycle import LifecycleGroup
from hookstream.sensors import Sensors
from hookstream.settings import Brokers

ENTRY_POINT_GROUP = "hookstream.services"


class NoSettings(BaseSettings):
    """For a service without settings of its own."""


@dataclass(frozen=True)
class ServiceContext:
    """What a service's build receives: read once at startup by the entrypoint, then passed down.

    ``bootstrap_servers`` is the entrypoint's ``KafkaConnection`` (the address and its TLS/SASL
    settings), or a bare address (PLAINTEXT): services hand it on to every Kafka client they make."""

    bootstrap_servers: Brokers
    database_url: str
    settings: Any  # an instance of the spec's settings class
    sensors: Sensors = field(default_factory=Sensors)
    # False when the entrypoint (or a setup Job) creates the topics: the parts then only use them.
    create_topics: bool = False


class GroupService(Protocol):
    def __call__(
        self, bootstrap_servers: Brokers, database_url: str, *, settings: Any, sensors: Sensors, create_topics: bool
    ) -> LifecycleGroup: ...


def build_with(service: GroupService) -> Callable[[ServiceContext], LifecycleGroup]:
    """The build of a service class that takes the context's parts as its arguments."""

    def build(context: ServiceContext) -> LifecycleGroup:
        return service(
            context.bootstrap_servers,
            context.database_url,
            settings=context.settings,
            sensors=context.sensors,
            create_topics=context.create_topics,
        )

    return build


@dataclass(frozen=True)
class ConsumerGroup:
    consumer: str  # the consumer service, e.g. "crm" or "delivery-send"
    group: str  # its Kafka group, hookstream.<consumer>
    input_topic: str  # what a replay resets
    dlq_topic: str  # where its dead letters go


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    description: str
    # A consumer service: the lifecycle group of its parts. A service with a server of its own
    # (ingress runs uvicorn workers) gives ``main`` instead and declares its topics itself.
    build: Callable[[ServiceContext], LifecycleGroup] | None = None
    main: Callable[[list[str]], int] | None = None
    settings: type[BaseSettings] = NoSettings
    migrations: str | None = None  # the package whose migrations/ folder holds NNNN_description.sql files
    health_port: int = 0  # the probe port's default; 0 picks a free one
    topics: Callable[[Any], list[TopicSpec]] | None = None  # default: what the built parts declare
    banner: Callable[[ServiceContext], str] | None = None

    def __post_init__(self) -> None:
        if (self.build is None) == (self.main is None):
            raise ConfigurationError(f"service {self.name!r} must give exactly one of build or main")

    def load_migrations(self) -> list[Migration]:
        return packaged_migrations(self.migrations) if self.migrations else []

    def owned_topics(self, context: ServiceContext) -> list[TopicSpec]:
        if self.topics is not None:
            return self.topics(context.settings)
        assert self.build is not None
        return self.build(context).topics()

    def consumer_groups(self, context: ServiceContext) -> list[ConsumerGroup]:
        if self.build is None:
            return []
        return [ConsumerGroup(*group) for group in self.build(context).consumer_groups()]


def discover() -> dict[str, ServiceSpec]:
    """Every registered service by name; a broken registration is an error that names it. A service
    whose optional dependencies are not installed (the sandbox, in a runtime-only image) is left out:
    ``get`` says how to install them."""
    return _discovered()[0]


def _discovered() -> tuple[dict[str, ServiceSpec], dict[str, str]]:
    found: dict[str, ServiceSpec] = {}
    unavailable: dict[str, str] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0].startswith("hookstream"):
                raise ConfigurationError(f"service {entry.name!r} ({entry.value}) failed to load: {exc!r}") from exc
            unavailable[entry.name] = f"its dependency {exc.name!r} is not installed: pip install 'hookstream[tools]'"
            continue
        except Exception as exc:
            raise ConfigurationError(f"service {entry.name!r} ({entry.value}) failed to load: {exc!r}") from exc
        if not isinstance(spec, ServiceSpec):
            raise ConfigurationError(f"entry point {entry.name!r} ({entry.value}) is not a ServiceSpec")
        if spec.name != entry.name:
            raise ConfigurationError(f"entry point {entry.name!r} names a spec called {spec.name!r}")
        found[spec.name] = spec
    return dict(sorted(found.items())), unavailable


def consumers(bootstrap_servers: Brokers, database_url: str) -> dict[str, ConsumerGroup]:
    """Every registered consumer by name (``crm``, ``delivery-send``…): its group, input and dead-letter
    topic, found by building every service (which connects to nothing)."""
    found: dict[str, ConsumerGroup] = {}
    for spec in discover().values():
        context = ServiceContext(bootstrap_servers, database_url, spec.settings())
        found.update({g.consumer: g for g in spec.consumer_groups(context)})
    return found


def get(name: str) -> ServiceSpec:
    services, unavailable = _discovered()
    if name in unavailable:
        raise UnknownService(f"service {name!r} cannot run in this installation: {unavailable[name]}")
    if name not in services:
        raise UnknownService(f"unknown service {name!r}; available: {', '.join(services) or 'none registered'}")
    return services[name]

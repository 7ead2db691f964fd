"""What every order workflow service is made of: a consumer of canonical order events with its own
group, retry tiers and DLQ, resumable steps, and the connectors to its external systems.

A workflow declares its settings (a ``WorkflowSettings`` with its own env prefix) and a handler;
``WorkflowService`` wires database, connectors and the consumer runtime into one lifecycle group.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from hookstream_schemas import topics
from pydantic_settings import BaseSettings

from hookstream.avro import AvroSerde, SchemaStore
from hookstream.connectors import Endpoint, HttpConnector
from hookstream.consumer import ConsumerService, ConsumerSettings, Handler, Record
from hookstream.consumer.steps import Steps
from hookstream.db import Database
from hookstream.kafka.headers import EVENT_TYPE
from hookstream.lifecycle import Lifecycle, LifecycleGroup
from hookstream.sensors import Sensors
from hookstream.settings import Brokers, CommaList, KafkaSettings


class WorkflowSettings(BaseSettings):
    """Shared by every workflow; a subclass gives the env prefix and its own ``service_name`` default."""

    retry_delays: CommaList = ["5s", "1m", "10m", "1h"]
    retry_jitter: float = 0.1
    commit_interval_ms: int = 1_000
    # Where it reads; change them only to run a second, separate pipeline (tests do).
    service_name: str = ""
    input_topic: str = topics.ORDER_EVENTS.name


class SystemSettings(WorkflowSettings):
    """A workflow that talks to one external system over HTTP."""

    url: str = ""
    auth_header: str | None = None  # "Authorization: Bearer <token>"
    timeout_ms: int = 5_000

    def endpoint(self, system: str) -> Endpoint:
        prefix = str(self.model_config.get("env_prefix", ""))
        return Endpoint(system, self.url, self.auth_header, self.timeout_ms, prefix)


class WorkflowParts:
    """What a workflow's handler is built from."""

    def __init__(self, db: Database, steps: Steps, canonical: AvroSerde) -> None:
        self.db = db
        self.steps = steps
        self.canonical = canonical


def of_types(event_types: Collection[str], handler: Handler) -> Handler:
    """The handler, for the event types it acts on: a record whose type header names another type is
    done without being decoded (most of a workflow's input is types it ignores). A record without
    the header (written before it existed) goes to the handler, which decides as before."""
    wanted = frozenset(event_types)

    async def handle(record: Record) -> None:
        kind = record.header(EVENT_TYPE)
        if kind is None or kind in wanted:
            await handler(record)

    return handle


def workflow_consumer(
    settings: WorkflowSettings,
    name: str,
    topic: str,
    handler: Handler,
    *,
    bootstrap_servers: Brokers,
    db: Database,
    consumer: ConsumerSettings | None = None,
    kafka: KafkaSettings | None = None,
    sensors: Sensors | None = None,
) -> ConsumerService:
    """A workflow's consumer of ``topic`` in group ``hookstream.<name>``, with the workflow's retry tiers."""
    s = settings
    return ConsumerService(
        name,
        topic,
        handler,
        bootstrap_servers=bootstrap_servers,
        db=db,
        settings=consumer
        or ConsumerSettings(
            retry_delays=s.retry_delays, retry_jitter=s.retry_jitter, commit_interval_ms=s.commit_interval_ms
        ),
        kafka=kafka,
        sensors=sensors,
        create_topics=False,
    )


class WorkflowService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: WorkflowSettings,
        handler: Callable[[WorkflowParts], Handler],
        connectors: Sequence[Lifecycle] = (),
        event_types: Collection[str] | None = None,
        db: Database | None = None,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        """``connectors`` (and relays) start before the consumer and stop after it; ``db`` when they need it too;
        ``event_types``: the canonical event types the handler acts on (``of_types``), None for all."""
        s = settings
        self.db = db or Database(database_url)
        parts = WorkflowParts(
            self.db, Steps(self.db, s.service_name), SchemaStore.bundled().serde(topics.ORDER_EVENTS.name)
        )
        self.handler = handler(parts)
        self.consumer = workflow_consumer(
            s,
            s.service_name,
            s.input_topic,
            self.handler if event_types is None else of_types(event_types, self.handler),
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            consumer=consumer,
            kafka=kafka,
            sensors=sensors,
        )
        super().__init__(
            s.service_name,
            [*connectors, self.db, self.consumer],
            create_topics_on=bootstrap_servers if create_topics else None,
        )


class SystemWorkflow(WorkflowService):
    """A workflow whose handler talks to one external system over HTTP: ``handler(api, parts)``."""

    def __init__(
        self,
        bootstrap_servers: Brokers,
        database_url: str,
        *,
        settings: SystemSettings,
        system: str,
        handler: Callable[[HttpConnector, WorkflowParts], Handler],
        **options: Any,
    ) -> None:
        """``options``: ``event_types``, ``consumer``, ``kafka``, ``sensors``, ``create_topics`` as for
        ``WorkflowService``."""
        self.settings = settings
        self.connector = HttpConnector(settings.endpoint(system))
        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            handler=lambda parts: handler(self.connector, parts),
            connectors=[self.connector],
            **options,
        )

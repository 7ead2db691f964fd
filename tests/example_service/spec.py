"""The example service's spec: what ``hookstream run example`` builds."""

from __future__ import annotations

from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.db import Database
from hookstream.lifecycle import LifecycleGroup
from hookstream.registry import ServiceContext, ServiceSpec
from hookstream_schemas.topics import TopicSpec
from pydantic_settings import BaseSettings, SettingsConfigDict

from tests.example_service.handler import Remember


class ExampleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_EXAMPLE_", extra="ignore")

    service_name: str = "example"
    input_topic: str = "example.input.v1"
    partitions: int = 2


def build(context: ServiceContext) -> LifecycleGroup:
    s: ExampleSettings = context.settings
    db = Database(context.database_url)
    consumer = ConsumerService(
        s.service_name,
        s.input_topic,
        Remember(s.service_name, db),
        bootstrap_servers=context.bootstrap_servers,
        db=db,
        settings=ConsumerSettings(retry_delays=["300ms"], commit_interval_ms=200),
        sensors=context.sensors,
        create_topics=False,
    )
    return LifecycleGroup(s.service_name, [db, consumer], topics=[TopicSpec(s.input_topic, s.partitions, 3_600_000)])


SPEC = ServiceSpec(
    name="example",
    description="The test suite's example consumer: remembers each event once.",
    build=build,
    settings=ExampleSettings,
    migrations="tests.example_service",
    health_port=0,
)

"""The CRM workflow's parts as one lifecycle group: database, CRM connector, consumer runtime."""

from __future__ import annotations

from hookstream.avro import SchemaStore
from hookstream.connectors import Endpoint, HttpConnector
from hookstream.consumer import ConsumerService, ConsumerSettings
from hookstream.consumer.steps import Steps
from hookstream.db import Database
from hookstream.lifecycle import LifecycleGroup
from hookstream.sensors import Sensors
from hookstream.settings import CommaList, KafkaSettings
from hookstream_schemas import topics
from hookstream_services.crm.handler import CrmSync
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "HOOKSTREAM_CRM_"


class CrmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    url: str = ""  # the CRM's base URL; the sandbox's is http://127.0.0.1:9500/crm
    auth_header: str | None = None  # "Authorization: Bearer <token>"
    timeout_ms: int = 5_000
    retry_delays: CommaList = ["5s", "1m", "10m", "1h"]
    retry_jitter: float = 0.1
    commit_interval_ms: int = 1_000
    # Where it reads; change them only to run a second, separate pipeline (tests do).
    service_name: str = "crm"
    input_topic: str = topics.ORDER_EVENTS.name


class CrmService(LifecycleGroup):
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        *,
        settings: CrmSettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        s = self.settings = settings
        self.db = Database(database_url)
        self.connector = HttpConnector(Endpoint("crm", s.url, s.auth_header, s.timeout_ms, PREFIX))
        self.handler = CrmSync(
            self.connector, Steps(self.db, s.service_name), SchemaStore.bundled().serde(topics.ORDER_EVENTS.name)
        )
        self.consumer = ConsumerService(
            s.service_name,
            s.input_topic,
            self.handler,
            bootstrap_servers=bootstrap_servers,
            db=self.db,
            settings=consumer
            or ConsumerSettings(
                retry_delays=s.retry_delays, retry_jitter=s.retry_jitter, commit_interval_ms=s.commit_interval_ms
            ),
            kafka=kafka,
            sensors=sensors,
            create_topics=False,
        )
        super().__init__(
            s.service_name,
            [self.db, self.connector, self.consumer],
            create_topics_on=bootstrap_servers if create_topics else None,
        )

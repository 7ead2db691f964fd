"""The CRM workflow: its settings and its parts (the CRM connector, the consumer runtime)."""

from __future__ import annotations

from hookstream.connectors import HttpConnector
from hookstream.consumer import ConsumerSettings
from hookstream.sensors import Sensors
from hookstream.settings import KafkaSettings
from hookstream.workflow import SystemSettings, WorkflowParts, WorkflowService
from hookstream_services.crm.handler import CrmSync
from pydantic_settings import SettingsConfigDict


class CrmSettings(SystemSettings):
    """``url``: the CRM's base URL (the sandbox's is http://127.0.0.1:9500/crm)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_CRM_", extra="ignore")

    service_name: str = "crm"


class CrmService(WorkflowService):
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
        self.settings = settings
        self.connector = HttpConnector(settings.endpoint("crm"))

        def handler(parts: WorkflowParts) -> CrmSync:
            return CrmSync(self.connector, parts.steps, parts.canonical)

        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            handler=handler,
            connectors=[self.connector],
            consumer=consumer,
            kafka=kafka,
            sensors=sensors,
            create_topics=create_topics,
        )

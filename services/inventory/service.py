"""The inventory workflow: its settings and its parts (the ERP connector, the consumer runtime)."""

from __future__ import annotations

from hookstream.connectors import HttpConnector
from hookstream.consumer import ConsumerSettings
from hookstream.sensors import Sensors
from hookstream.settings import KafkaSettings
from hookstream.workflow import SystemSettings, WorkflowParts, WorkflowService
from hookstream_services.inventory.handler import Stock
from pydantic_settings import SettingsConfigDict


class InventorySettings(SystemSettings):
    """``url``: the ERP/inventory system's base URL (the sandbox's is http://127.0.0.1:9500/erp)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_INVENTORY_", extra="ignore")

    service_name: str = "inventory"


class InventoryService(WorkflowService):
    def __init__(
        self,
        bootstrap_servers: str,
        database_url: str,
        *,
        settings: InventorySettings,
        consumer: ConsumerSettings | None = None,
        kafka: KafkaSettings | None = None,
        sensors: Sensors | None = None,
        create_topics: bool = True,
    ) -> None:
        self.settings = settings
        self.connector = HttpConnector(settings.endpoint("erp"))

        def handler(parts: WorkflowParts) -> Stock:
            return Stock(self.connector, parts.steps, parts.canonical)

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

"""The inventory workflow: its settings, and its handler wired to the ERP."""

from __future__ import annotations

from typing import Any

from hookstream.settings import Brokers
from hookstream.workflow import SystemSettings, SystemWorkflow
from hookstream_services.inventory.handler import EVENT_TYPES, Stock
from pydantic_settings import SettingsConfigDict


class InventorySettings(SystemSettings):
    """``url``: the ERP/inventory system's base URL (the sandbox's is http://127.0.0.1:9500/erp)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_INVENTORY_", extra="ignore")

    service_name: str = "inventory"


class InventoryService(SystemWorkflow):
    def __init__(
        self, bootstrap_servers: Brokers, database_url: str, *, settings: InventorySettings, **options: Any
    ) -> None:
        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            system="erp",
            handler=lambda api, parts: Stock(api, parts.steps, parts.canonical),
            event_types=EVENT_TYPES,
            **options,
        )

"""The CRM workflow: its settings, and its handler wired to the CRM."""

from __future__ import annotations

from typing import Any

from hookstream.settings import Brokers
from hookstream.workflow import SystemSettings, SystemWorkflow
from hookstream_services.crm.handler import EVENT_TYPES, CrmSync
from pydantic_settings import SettingsConfigDict


class CrmSettings(SystemSettings):
    """``url``: the CRM's base URL (the sandbox's is http://127.0.0.1:9500/crm)."""

    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_CRM_", extra="ignore")

    service_name: str = "crm"


class CrmService(SystemWorkflow):
    def __init__(self, bootstrap_servers: Brokers, database_url: str, *, settings: CrmSettings, **options: Any) -> None:
        super().__init__(
            bootstrap_servers,
            database_url,
            settings=settings,
            system="crm",
            handler=lambda api, parts: CrmSync(api, parts.steps, parts.canonical),
            event_types=EVENT_TYPES,
            **options,
        )

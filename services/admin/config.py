"""The admin service's settings (``HOOKSTREAM_ADMIN_*``)."""

from __future__ import annotations

from hookstream.settings import CommaList
from hookstream_schemas import topics
from pydantic_settings import BaseSettings, SettingsConfigDict


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_ADMIN_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8070
    deliveries_topic: str = topics.DELIVERIES.name  # where a retried delivery is queued
    # Targets a test event may go to although private (e.g. loopback for local runs), as for delivery.
    allow_targets: CommaList = []

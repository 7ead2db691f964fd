"""``hookstream run delivery``: orders.events.v1 → signed webhooks to every matching subscription."""

from __future__ import annotations

from hookstream.entrypoint import run_service
from hookstream_services.delivery.service import DeliveryService, DeliverySettings


def build(bootstrap: str, database_url: str) -> tuple[DeliveryService, str]:
    settings = DeliverySettings()
    banner = (
        f"delivery: {settings.canonical_topic} → {settings.deliveries_topic} → partner endpoints;"
        f" retries {', '.join(settings.retry_schedule)}"
    )
    return DeliveryService(bootstrap, database_url, settings=settings), banner


def main(argv: list[str]) -> int:
    return run_service("delivery", __doc__, argv, build)

"""Delivery as a registered service: ``hookstream run delivery``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec
from hookstream_services.delivery.service import DeliveryService, DeliverySettings


def build(context: ServiceContext) -> DeliveryService:
    return DeliveryService(
        context.bootstrap_servers,
        context.database_url,
        settings=context.settings,
        sensors=context.sensors,
        create_topics=context.create_topics,
    )


def banner(context: ServiceContext) -> str:
    s: DeliverySettings = context.settings
    return (
        f"delivery: {s.canonical_topic} → {s.deliveries_topic} → partner endpoints;"
        f" retries {', '.join(s.retry_schedule)}"
    )


SPEC = ServiceSpec(
    name="delivery",
    description="orders.events.v1 → signed webhooks to every matching subscription (fan-out, then sending).",
    build=build,
    settings=DeliverySettings,
    health_port=9402,
    banner=banner,
)

"""Delivery as a registered service: ``hookstream run delivery``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.delivery.service import DeliveryService, DeliverySettings


def banner(context: ServiceContext) -> str:
    s: DeliverySettings = context.settings
    return (
        f"delivery: {s.canonical_topic} → {s.deliveries_topic} → partner endpoints;"
        f" retries {', '.join(s.retry_schedule)}"
    )


SPEC = ServiceSpec(
    name="delivery",
    description="orders.events.v1 → signed webhooks to every matching subscription (fan-out, then sending).",
    build=build_with(DeliveryService),
    settings=DeliverySettings,
    health_port=9402,
    banner=banner,
)

"""The inventory workflow as a registered service: ``hookstream run inventory``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.inventory.service import InventoryService, InventorySettings


def banner(context: ServiceContext) -> str:
    s: InventorySettings = context.settings
    return f"inventory: {s.input_topic} → ERP at {s.url}; retries {', '.join(s.retry_delays)}"


SPEC = ServiceSpec(
    name="inventory",
    description="orders.events.v1 → the ERP: stock reserved on order, released on cancellation, taken on shipment.",
    build=build_with(InventoryService),
    settings=InventorySettings,
    health_port=9405,
    banner=banner,
)

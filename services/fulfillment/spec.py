"""The fulfillment workflow as a registered service: ``hookstream run fulfillment``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.fulfillment.service import FulfillmentService, FulfillmentSettings


def banner(context: ServiceContext) -> str:
    s: FulfillmentSettings = context.settings
    risk = f"waits for {s.risk_topic}" if s.wait_for_risk else "does not wait for risk"
    return f"fulfillment: order.paid → invoice → warehouse at {s.url} → payment email; {risk}"


SPEC = ServiceSpec(
    name="fulfillment",
    description="order.paid → invoice PDF → (risk clearance) → warehouse request → payment email with the invoice.",
    build=build_with(FulfillmentService),
    settings=FulfillmentSettings,
    migrations="hookstream_services.fulfillment",
    health_port=9407,
    banner=banner,
)

"""The risk workflow as a registered service: ``hookstream run risk``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.risk.service import RiskService, RiskSettings


def banner(context: ServiceContext) -> str:
    s: RiskSettings = context.settings
    return f"risk: {s.input_topic} → {s.verdict_topic} (held at score {s.hold_at}); flags to {s.url}"


SPEC = ServiceSpec(
    name="risk",
    description="order.created → a risk score and verdict on orders.risk.v1; high-risk orders held, flagged.",
    build=build_with(RiskService),
    settings=RiskSettings,
    health_port=9406,
    banner=banner,
)

"""The CRM workflow as a registered service: ``hookstream run crm``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.crm.service import CrmService, CrmSettings


def banner(context: ServiceContext) -> str:
    s: CrmSettings = context.settings
    return f"crm: {s.input_topic} → CRM at {s.url}; retries {', '.join(s.retry_delays)}"


SPEC = ServiceSpec(
    name="crm",
    description="orders.events.v1 → the CRM: customer and order upserted, status and flags kept current.",
    build=build_with(CrmService),
    settings=CrmSettings,
    health_port=9403,
    banner=banner,
)

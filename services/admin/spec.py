"""The admin API as a registered service: ``hookstream run admin``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService


def banner(context: ServiceContext) -> str:
    s: AdminSettings = context.settings
    return (
        f"admin: dashboard on http://{s.host}:{s.port}/, API on /api/v1 (OpenAPI: /openapi.yaml);"
        " tokens: `hookstream tokens create`"
    )


SPEC = ServiceSpec(
    name="admin",
    description="The admin API and dashboard: subscriptions, deliveries, orders, replay, dead letters, behind tokens.",
    build=build_with(AdminService),
    settings=AdminSettings,
    health_port=9408,
    banner=banner,
)

"""The normalizer as a registered service: ``hookstream run normalizer``."""

from __future__ import annotations

from hookstream.registry import ServiceContext, ServiceSpec, build_with
from hookstream_services.normalizer.service import NormalizerService, NormalizerSettings


def banner(context: ServiceContext) -> str:
    s: NormalizerSettings = context.settings
    return (
        f"normalizer: {s.raw_topic} → {s.canonical_topic} on {context.bootstrap_servers};"
        f" group hookstream.{s.service_name}"
    )


SPEC = ServiceSpec(
    name="normalizer",
    description="webhooks.raw.v1 → orders.events.v1: dedupe, validate, canonicalise, order state in Postgres.",
    build=build_with(NormalizerService),
    settings=NormalizerSettings,
    health_port=9401,
    banner=banner,
)

"""Ingress as a registered service: ``hookstream run ingress`` (uvicorn workers, so a main of its own)."""

from __future__ import annotations

from hookstream.registry import ServiceSpec
from hookstream_schemas.topics import TopicSpec
from hookstream_services.ingress.config import IngressOptions, IngressSettings
from hookstream_services.ingress.main import DEFAULT_HEALTH_PORT, main


def owned_topics(settings: IngressSettings) -> list[TopicSpec]:
    # The contract's shape; a config file that renames the topic creates its own at start.
    return [IngressOptions().topic_spec]


SPEC = ServiceSpec(
    name="ingress",
    description="Verified channel webhooks (Shopify, WooCommerce, Stripe, custom), stored on webhooks.raw.v1.",
    main=main,
    settings=IngressSettings,
    health_port=DEFAULT_HEALTH_PORT,  # probes and /metrics; webhooks on --port
    topics=owned_topics,
)

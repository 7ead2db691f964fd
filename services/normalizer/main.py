"""``hookstream run normalizer``: webhooks.raw.v1 → orders.events.v1 with order state in Postgres."""

from __future__ import annotations

from hookstream.entrypoint import run_service
from hookstream_services.normalizer.service import DLQ_TOPIC, NormalizerService

__all__ = ["DLQ_TOPIC", "main"]


def build(bootstrap: str, database_url: str) -> tuple[NormalizerService, str]:
    service = NormalizerService(bootstrap, database_url)
    names = service.names
    banner = (
        f"normalizer: {names.raw_topic} → {names.canonical_topic} on {bootstrap};"
        f" dead letters: {names.dlq_topic}; group hookstream.{names.service}"
    )
    return service, banner


def main(argv: list[str]) -> int:
    return run_service("normalizer", __doc__, argv, build)

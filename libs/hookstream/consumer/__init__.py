"""The consumer runtime: retry tiers, dead letters, per-key ordering across retries, idempotent effects."""

from hookstream.consumer.idempotency import first_time, idempotency_key
from hookstream.consumer.metrics import ConsumerMetrics
from hookstream.consumer.outcomes import Handler
from hookstream.consumer.records import Record
from hookstream.consumer.retry import RetryPolicy
from hookstream.consumer.runtime import ConsumerService, ConsumerSettings

__all__ = [
    "ConsumerMetrics",
    "ConsumerService",
    "ConsumerSettings",
    "Handler",
    "Record",
    "RetryPolicy",
    "first_time",
    "idempotency_key",
]

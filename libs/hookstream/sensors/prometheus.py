"""The metrics sensor: what the runtime reports, as Prometheus metrics for ``/metrics``."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from hookstream.kafka.headers import RECEIVED_AT
from hookstream.sensors import Sensor

if TYPE_CHECKING:
    from hookstream.consumer.records import Record

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# End to end spans retry tiers (seconds to hours): the tail matters as much as the median.
_END_TO_END_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600)


class PrometheusSensor(Sensor):
    """One per process, with a registry of its own (so tests can run several side by side)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.records_in = Counter(
            "hookstream_records_in", "Records fetched by a consumer service", ["service", "topic"], registry=r
        )
        self.handled = Counter("hookstream_records_handled", "Records handled successfully", ["service"], registry=r)
        self.handler_seconds = Histogram(
            "hookstream_handler_seconds", "Handler time per record", ["service"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.retried = Counter(
            "hookstream_records_retried", "Records sent to a retry tier", ["service", "tier"], registry=r
        )
        self.dead_lettered = Counter(
            "hookstream_records_dead_lettered", "Records sent to the dead-letter topic", ["service"], registry=r
        )
        self.parked = Counter(
            "hookstream_records_parked", "Records parked behind a retrying record of their key", ["service"], registry=r
        )
        self.released = Counter(
            "hookstream_records_released", "Parked records run after their blocker finished", ["service"], registry=r
        )
        self.committed = Gauge(
            "hookstream_consumer_committed_offset",
            "Last committed offset",
            ["service", "topic", "partition"],
            registry=r,
            multiprocess_mode="max",
        )
        self.lag = Gauge(
            "hookstream_consumer_lag",
            "Records behind the high watermark",
            ["service", "topic", "partition"],
            registry=r,
        )
        self.parked_keys = Gauge(
            "hookstream_parked_keys",
            "Ordering keys held behind a record in a retry tier (this instance's view)",
            ["service"],
            registry=r,
        )
        self.produced = Counter("hookstream_records_produced", "Records the broker acknowledged", ["topic"], registry=r)
        self.produce_failed = Counter(
            "hookstream_produce_failures", "Records the producer gave up on", ["topic"], registry=r
        )
        self.http_requests = Counter(
            "hookstream_http_requests", "Webhooks answered by ingress", ["channel", "status"], registry=r
        )
        self.auth_refused = Counter(
            "hookstream_auth_refusals",
            "Requests refused for their token: missing, unknown (or revoked, expired)",
            ["service", "reason"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "hookstream_http_request_seconds",
            "Ingress time per webhook",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "hookstream_delivery_attempts", "Requests to partner endpoints", ["endpoint", "outcome"], registry=r
        )
        self.attempt_seconds = Histogram(
            "hookstream_delivery_attempt_seconds",
            "Partner endpoint response time",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "hookstream_end_to_end_seconds",
            "Webhook received by the ingress → handled by this service (retries and redrives included)",
            ["service"],
            buckets=_END_TO_END_BUCKETS,
            registry=r,
        )
        self.circuit_open = Gauge(
            "hookstream_circuit_open",
            "1 while this delivery instance's circuit breaker for the endpoint is open",
            ["endpoint"],
            registry=r,
            multiprocess_mode="max",
        )
        self.disabled = Counter(
            "hookstream_endpoints_disabled", "Endpoints the delivery disabled", ["endpoint"], registry=r
        )
        self.outbox_depth = Gauge(
            "hookstream_outbox_depth",
            "Rows waiting in the service's transactional outbox",
            ["service"],
            registry=r,
            multiprocess_mode="max",
        )

    def on_record_in(self, service: str, record: Record) -> None:
        self.records_in.labels(service, record.topic).inc()

    def on_record_handled(self, service: str, record: Record, seconds: float) -> None:
        self.handled.labels(service).inc()
        self.handler_seconds.labels(service).observe(seconds)
        received_ms = record.header(RECEIVED_AT)
        if received_ms is not None and received_ms.isdigit():
            self.end_to_end.labels(service).observe(max(0.0, time.time() - int(received_ms) / 1000))

    def on_record_retried(self, service: str, record: Record, tier: str, error: BaseException) -> None:
        self.retried.labels(service, tier).inc()

    def on_record_dead_lettered(self, service: str, record: Record, error: BaseException) -> None:
        self.dead_lettered.labels(service).inc()

    def on_record_parked(self, service: str, record: Record) -> None:
        self.parked.labels(service).inc()

    def on_record_released(self, service: str, record: Record) -> None:
        self.released.labels(service).inc()

    def on_committed(self, service: str, topic: str, partition: int, offset: int) -> None:
        self.committed.labels(service, topic, str(partition)).set(offset)

    def on_lag(self, service: str, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(service, topic, str(partition)).set(lag)

    def on_parked_keys(self, service: str, keys: int) -> None:
        self.parked_keys.labels(service).set(keys)

    def on_produced(self, topic: str, error: BaseException | None) -> None:
        (self.produced if error is None else self.produce_failed).labels(topic).inc()

    def on_http_request(self, channel: str, status: int, seconds: float) -> None:
        self.http_requests.labels(channel, str(status)).inc()
        self.http_seconds.labels(channel).observe(seconds)

    def on_auth_refused(self, service: str, reason: str) -> None:
        self.auth_refused.labels(service, reason).inc()

    def on_http_attempt(self, endpoint: str, outcome: str, status: int | None, seconds: float) -> None:
        self.attempts.labels(endpoint, outcome).inc()
        self.attempt_seconds.labels(endpoint).observe(seconds)

    def on_circuit(self, endpoint: str, is_open: bool) -> None:
        self.circuit_open.labels(endpoint).set(1 if is_open else 0)

    def on_endpoint_disabled(self, endpoint: str, reason: str) -> None:
        self.disabled.labels(endpoint).inc()

    def on_outbox_depth(self, service: str, rows: int) -> None:
        self.outbox_depth.labels(service).set(rows)

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several worker processes (ingress --workers N): every worker's values, summed.
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)

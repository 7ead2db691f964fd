"""The tracing sensor: one CONSUMER span per record a service handles, continuing the trace its
``traceparent`` header names (across retry tiers, parking and redrive, which keep the header), and
current while the handler runs, so its outbound calls and the records it produces join the trace.

Registered only when tracing is on (``hookstream.tracing.Tracing``); spans follow OpenTelemetry's
messaging conventions (``messaging.system=kafka``, destination, partition, offset, key)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from hookstream.kafka.headers import TRACEPARENT, TRACESTATE
from hookstream.sensors import Sensor
from hookstream.tracing import tracer

if TYPE_CHECKING:
    from hookstream.consumer.records import Record


class TracingSensor(Sensor):
    def __init__(self) -> None:
        self.tracer = tracer()
        self.open: dict[int, tuple[trace.Span, Any]] = {}  # id(record) → its span and the context token

    def on_record_started(self, service: str, record: Record) -> None:
        carrier = {"traceparent": record.header(TRACEPARENT) or "", "tracestate": record.header(TRACESTATE) or ""}
        parent = propagate.extract(carrier)
        span = self.tracer.start_span(
            f"process {record.topic}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.kafka.message.key": record.key or "",
                "messaging.consumer.group.name": service,
                "messaging.message.id": record.event_id,
                "hookstream.service": service,
                "hookstream.attempt": record.attempt,
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        self.open[id(record)] = (span, token)

    def on_record_handled(self, service: str, record: Record, seconds: float) -> None:
        self._end(record, "handled")

    def on_record_retried(self, service: str, record: Record, tier: str, error: BaseException) -> None:
        self._end(record, f"retry {tier}", error)

    def on_record_dead_lettered(self, service: str, record: Record, error: BaseException) -> None:
        self._end(record, "dead-lettered", error)

    def on_record_abandoned(self, service: str, record: Record, error: BaseException | None) -> None:
        self._end(record, "abandoned", error)

    def _end(self, record: Record, outcome: str, error: BaseException | None = None) -> None:
        found = self.open.pop(id(record), None)
        if found is None:
            return
        span, token = found
        span.set_attribute("hookstream.outcome", outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))
        span.end()
        context.detach(token)

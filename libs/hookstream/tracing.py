"""W3C trace context, carried in the ``traceparent`` header of every record, and OpenTelemetry tracing
when the ``OTEL_*`` variables turn it on."""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from hookstream import redact
from hookstream.errors import ConfigurationError
from hookstream.lifecycle import Lifecycle

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


# Trace and span ids need uniqueness, not secrecy (W3C trace-context §3.2.2.3); the
# non-cryptographic generator is much cheaper than os.urandom on the request path.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)  # forked workers must not repeat each other's ids


def _hex(bits: int) -> str:
    return f"{_random.getrandbits(bits):0{bits // 4}x}"


def clean_tracestate(incoming: str | None, traceparent: str | None) -> str | None:
    """A caller's ``tracestate``, to carry verbatim beside the trace it continues; None without a valid
    ``traceparent`` (W3C trace-context: the state belongs to that trace), or when not plausibly one
    (printable ASCII; we keep at most 512 characters)."""
    if not incoming or not _TRACEPARENT.match((traceparent or "").strip().lower()):
        return None
    value = incoming.strip()
    if not value or len(value) > 512 or not value.isascii() or not value.isprintable():
        return None
    return value


def child_traceparent(incoming: str | None) -> str:
    """Continue the caller's trace with a new span id, or start a new sampled trace."""
    match = _TRACEPARENT.match((incoming or "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return f"00-{match.group(1)}-{_span_id()}-{match.group(3)}"
    trace_id = _hex(128)
    while trace_id == "0" * 32:
        trace_id = _hex(128)
    return f"00-{trace_id}-{_span_id()}-01"


def _span_id() -> str:
    span_id = _hex(64)
    while span_id == "0" * 16:  # all-zero ids are invalid
        span_id = _hex(64)
    return span_id


# OpenTelemetry, on only when the standard OTEL_* variables ask for an exporter. Off, nothing below
# does more than read one module flag: records carry the cheap traceparent above instead.
_enabled = False


def enabled() -> bool:
    return _enabled


def current_traceparent(fallback: str) -> str:
    """The current span's traceparent when tracing is on and a span is current, else ``fallback``."""
    if not _enabled:
        return fallback
    from opentelemetry import trace

    return _context_headers(trace.get_current_span()).get("traceparent", fallback)


def continued(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """A consumed record's headers for a record produced from it: its ``traceparent`` becomes the
    current span's when tracing is on (the handling span is the new record's parent); off, unchanged."""
    if not _enabled:
        return headers
    current = current_traceparent("")
    if not current:
        return headers
    return [*((k, v) for k, v in headers if k != "traceparent"), ("traceparent", current.encode())]


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span, for log lines; None when tracing is off or no span is current."""
    if not _enabled:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") if ctx.is_valid else None


def outgoing_traceparent(incoming: str | None) -> str:
    """What a record produced while handling another carries: the handling span, or the trace continued."""
    return current_traceparent("") or child_traceparent(incoming)


_NOTHING: AbstractContextManager[None] = nullcontext()


def producing(topic: str, key: str | None) -> AbstractContextManager[None]:
    """A PRODUCER span around a produce (waiting for the broker's ack), current while it lasts. An
    unsampled request needs none: its record carries the request's context (sampled flag off, so
    downstream services drop it too)."""
    if not _enabled:
        return _NOTHING  # the ingress's hot path: not even the attributes are built
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key or "",
    }
    return span(f"send {topic}", attributes, kind="producer")


@contextmanager
def serving(
    method: str, route: str, path: str, traceparent: str | None, tracestate: str | None = None
) -> Iterator[Callable[[int], None]]:
    """A SERVER span for one HTTP request (HTTP semantic conventions), current while it lasts; the
    caller reports the status it answered through the function yielded. Off: a no-op."""
    if not _enabled:
        yield _ignore_status
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    carrier = {"traceparent": traceparent, "tracestate": tracestate or ""}
    parent = propagate.extract(carrier) if traceparent else None
    attributes = {"http.request.method": method, "http.route": route, "url.path": path, "url.scheme": "http"}
    with tracer().start_as_current_span(
        f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes
    ) as span:

        def answered(status: int) -> None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))

        yield answered


def _ignore_status(status: int) -> None:
    return None


@contextmanager
def span(
    name: str, attributes: Mapping[str, str | int], *, kind: Literal["internal", "client", "producer"] = "internal"
) -> Iterator[None]:
    """A span current while it lasts (a workflow step; an SMTP send, ``client``; a produce, ``producer``),
    only inside a sampled trace. Off: a no-op."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    if not trace.get_current_span().is_recording():
        yield
        return
    span_kind = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER}[kind]
    with tracer().start_as_current_span(name, kind=span_kind, attributes=dict(attributes)):
        yield


class Call:
    """An outbound HTTP request's tracing: the headers it must carry, and where its status is reported."""

    __slots__ = ("_span", "headers")

    def __init__(self, headers: dict[str, str], span_: Span | None) -> None:
        self.headers = headers
        self._span = span_

    def answered(self, status: int) -> None:
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("http.response.status_code", status)
        if status >= 400:  # a client span's error (HTTP semantic conventions)
            self._span.set_status(Status(StatusCode.ERROR))


_UNTRACED = Call({}, None)


@contextmanager
def calling(method: str, url: str) -> Iterator[Call]:
    """A CLIENT span for one outbound HTTP request (HTTP semantic conventions) inside a sampled trace;
    the request carries ``Call.headers`` (its ``traceparent``, so the peer's own tracing can join; in
    an unsampled trace the current one, sampled flag off). An error raised inside is recorded. Off:
    nothing, no headers."""
    if not _enabled:
        yield _UNTRACED
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    current = trace.get_current_span()
    if not current.is_recording():
        carried = _context_headers(current)
        yield Call(carried, None) if carried else _UNTRACED
        return
    parts = urlsplit(url)
    attributes: dict[str, str | int] = {"http.request.method": method, "url.full": redact.url(url)}
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    with tracer().start_as_current_span(method, kind=SpanKind.CLIENT, attributes=attributes) as client:
        yield Call(_context_headers(client), client)


def _context_headers(span_: Span) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``, when the trace has one) naming ``span_``; none for no valid span."""
    ctx = span_.get_span_context()
    if not ctx.is_valid:
        return {}
    headers = {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"}
    if ctx.trace_state:
        headers["tracestate"] = ctx.trace_state.to_header()
    return headers


_tracer: Tracer | None = None


def tracer() -> Tracer:
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer("hookstream")
    return _tracer


def _exporter_from_env(env: Mapping[str, str]) -> str | None:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not chosen:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if endpoint else None
    if chosen == "none":
        return None
    if chosen not in ("otlp", "console"):
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={chosen!r}: hookstream exports 'otlp' (HTTP), 'console' or 'none'"
        )
    return chosen


class Tracing(Lifecycle):
    """OpenTelemetry tracing for one process, configured only by the standard ``OTEL_*`` variables
    (exporter, endpoint, headers, sampler, resource), read once at startup. ``from_env`` gives None
    when no exporter is asked for: then nothing is installed and nothing costs."""

    def __init__(self, service: str, exporter: str) -> None:
        self.service = service
        self.exporter = exporter
        self.provider: TracerProvider | None = None

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Tracing | None:
        exporter = _exporter_from_env(os.environ if env is None else env)
        return None if exporter is None else cls(service, exporter)

    def install(self) -> TracerProvider:
        """Set the process's tracer provider. Idempotent; synchronous for uvicorn's app factory."""
        # The SDK and the exporter load only here: a process with tracing off never pays for them.
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

        global _enabled
        if self.provider is not None:
            return self.provider
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the service's own name.
        provider = TracerProvider(resource=Resource.create({"service.name": self.service}))
        exporter: SpanExporter = OTLPSpanExporter() if self.exporter == "otlp" else ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        self.provider = provider
        _enabled = True
        return provider

    async def start(self) -> None:
        self.install()

    async def stop(self) -> None:
        if self.provider is not None:
            await asyncio.to_thread(self.provider.shutdown)  # flushes the spans still batched

"""Tracing is configured by the standard OTEL_* variables only, and costs nothing when they are absent."""

from __future__ import annotations

import json
import logging

import pytest
from hookstream import tracing
from hookstream.errors import ConfigurationError
from hookstream.logs import JsonFormatter


def test_tracing_is_on_only_when_an_exporter_is_asked_for() -> None:
    assert tracing.Tracing.from_env("crm", {}) is None
    assert tracing.Tracing.from_env("crm", {"OTEL_TRACES_EXPORTER": "none"}) is None
    on = tracing.Tracing.from_env("crm", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert on is not None
    assert (on.service, on.exporter) == ("crm", "otlp")
    console = tracing.Tracing.from_env("crm", {"OTEL_TRACES_EXPORTER": "console"})
    assert console is not None
    assert console.exporter == "console"
    off = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert tracing.Tracing.from_env("crm", off) is None
    with pytest.raises(ConfigurationError, match="'otlp' \\(HTTP\\), 'console' or 'none'"):
        tracing.Tracing.from_env("crm", {"OTEL_TRACES_EXPORTER": "zipkin"})


def test_off_nothing_changes_what_records_carry() -> None:
    assert not tracing.enabled()
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tracing.current_traceparent(incoming) == incoming
    continued = tracing.outgoing_traceparent(incoming)
    assert continued.startswith("00-0af7651916cd43dd8448eb211c80319c-")  # the same trace, a new span id
    headers = [("traceparent", incoming.encode()), ("hookstream-event-id", b"e1")]
    assert tracing.continued(headers) is headers
    assert tracing.current_ids() is None
    with tracing.producing("webhooks.raw.v1", "shopify:1"):
        pass
    with tracing.calling("POST", "https://partner.example/hooks") as call:
        assert call.headers == {}  # a partner's request carries nothing of tracing
        call.answered(500)
    with tracing.span("step upsert", {"hookstream.step": "upsert"}):
        pass


def test_json_logs_carry_the_current_trace_and_span(monkeypatch: pytest.MonkeyPatch) -> None:
    record = logging.LogRecord("hookstream.crm", logging.INFO, __file__, 1, "upserted", None, None)
    assert "trace_id" not in json.loads(JsonFormatter().format(record))
    monkeypatch.setattr(tracing, "current_ids", lambda: ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
    line = json.loads(JsonFormatter().format(record))
    assert (line["trace_id"], line["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")

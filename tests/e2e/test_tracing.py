"""One webhook, one trace: `hookstream run ingress|normalizer|delivery|crm` export OTLP/HTTP (set up only
by OTEL_* variables) to a receiver in this test that decodes the protobuf (opentelemetry-proto). The
spans cover the ingress request, the produce, the normalizer, a workflow (CRM) and its HTTP call, and
the partner delivery, retried once, with the right parents; the partner got ``traceparent`` too."""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from hookstream.db import Database
from hookstream.store.subscriptions import SubscriptionStore
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.keys import KEYRING
from tests.partner import Answer, running_partner
from tests.service_processes import logs, pipeline_env, processes
from tests.signing import signed_sample, write_config
from tests.waiting import until

ORDER = "shopify:5612345678901"


class Receiver:
    """An OTLP/HTTP traces endpoint: every span it was sent, flattened."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
            for scope in resource.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        {
                            "service": service,
                            "name": s.name,
                            "kind": s.kind,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(),
                            "trace_state": s.trace_state,
                            "attributes": {a.key: _value(a.value) for a in s.attributes},
                            "error": s.status.code == 2,
                        }
                    )
        return web.Response(content_type="application/x-protobuf", body=b"")


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


async def test_one_webhook_is_one_trace_across_every_service(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path, sandbox: SandboxServers
) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    otlp_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", otlp_port).start()

    env, topics = pipeline_env(unique_name, sandbox)
    raw, canonical, deliveries = topics["raw"], topics["canonical"], topics["deliveries"]
    env["delivery"]["HOOKSTREAM_DELIVERY_RETRY_SCHEDULE"] = "300ms"
    names = {s: env[s][f"HOOKSTREAM_{s.upper()}_SERVICE_NAME"] for s in ("normalizer", "delivery", "crm")}
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: export soon, the test waits for the spans
    }
    config = write_config(tmp_path / "ingress.toml", topic=raw)
    ingress_port = free_port()
    run = [sys.executable, "-m", "hookstream", "run"]
    commands = [
        ([*run, "ingress", "--port", str(ingress_port), "--health-port", "0", "--config", str(config)], base),
        *(
            ([*run, name, "--health-port", str(free_port())], {**base, **env[name]})
            for name in ("normalizer", "delivery", "crm")
        ),
    ]
    try:
        async with running_partner() as partner, Database(migrated_database_url) as db:
            await SubscriptionStore(db, KEYRING).add(
                name="traced", url=f"{partner.url}/traced", event_types=["order.created"]
            )
            partner.script[f"/traced#{ORDER}/1"] = [Answer(500)]  # the first attempt fails: retried once
            with processes(commands, tmp_path) as procs:
                channel, headers, body, _ = signed_sample("shopify_orders_create")
                headers = {**headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": STATE}

                async def accepted() -> bool:
                    assert all(p.poll() is None for p in procs), logs(tmp_path)
                    try:
                        async with (
                            aiohttp.ClientSession() as http,
                            http.post(
                                f"http://127.0.0.1:{ingress_port}/webhooks/{channel}", data=body, headers=headers
                            ) as answer,
                        ):
                            return answer.status == 200
                    except aiohttp.ClientConnectionError:
                        return False  # still starting

                await until(accepted, 90, lambda: f"the ingress to take the webhook\n{logs(tmp_path)}")
                await until(lambda: len(partner.at("/traced")) == 2, 60, lambda: f"two attempts\n{logs(tmp_path)}")

                def spans_of(service: str, kind: int) -> list[dict[str, Any]]:
                    return [s for s in receiver.spans if s["service"] == service and s["kind"] == kind]

                def complete() -> bool:
                    send = [s for s in spans_of("delivery", CONSUMER) if s["name"] != f"process {canonical}"]
                    crm_calls = spans_of("crm", CLIENT)
                    return bool(send) and len(spans_of("delivery", CLIENT)) >= 2 and len(crm_calls) >= 2

                await until(complete, 30, lambda: f"the spans of every service: {_names(receiver.spans)}")
    finally:
        await runner.cleanup()

    [server] = spans_of("ingress", SERVER)
    trace_id = server["trace_id"]
    assert (trace_id, server["parent"]) == (CALLER_TRACE, CALLER_SPAN)  # the sender's trace, continued
    assert {s["trace_id"] for s in receiver.spans} == {trace_id}, _names(receiver.spans)  # one trace
    assert {s["service"] for s in receiver.spans} == {"ingress", "normalizer", "delivery", "crm"}
    assert server["attributes"]["http.request.method"] == "POST"
    assert server["attributes"]["http.response.status_code"] == 200
    [produce] = spans_of("ingress", PRODUCER)
    assert (produce["name"], produce["parent"]) == (f"send {raw}", server["span_id"])
    assert produce["attributes"]["messaging.system"] == "kafka"
    [normalized] = spans_of("normalizer", CONSUMER)
    assert (normalized["name"], normalized["parent"]) == (f"process {raw}", produce["span_id"])
    assert normalized["attributes"]["messaging.destination.name"] == raw
    assert {"messaging.kafka.offset", "messaging.destination.partition.id"} <= set(normalized["attributes"])
    assert normalized["attributes"]["messaging.kafka.message.key"] == ORDER

    crm_spans = spans_of("crm", CONSUMER)
    assert {s["parent"] for s in crm_spans} == {normalized["span_id"]}  # the workflow continues the normalizer
    steps = spans_of("crm", INTERNAL)  # the workflow's steps, each around its call and its record
    assert sorted(s["name"] for s in steps) == ["step contact", "step order"], _names(receiver.spans)
    assert {s["parent"] for s in steps} <= {s["span_id"] for s in crm_spans}
    assert {s["attributes"]["hookstream.service"] for s in steps} == {names["crm"]}
    crm_calls = spans_of("crm", CLIENT)
    assert sorted(c["parent"] for c in crm_calls) == sorted(s["span_id"] for s in steps)  # one call per step
    assert all(c["attributes"]["url.full"].startswith(sandbox.url("crm")) for c in crm_calls)
    assert {c["attributes"]["http.request.method"] for c in crm_calls} == {"PUT"}

    consumed = spans_of("delivery", CONSUMER)
    [fanout] = [s for s in consumed if s["name"] == f"process {canonical}"]
    assert fanout["parent"] == normalized["span_id"]
    # deliveries.v1 (the hand-over, which schedules the retry) and the retry tier: both continue the fan-out.
    sends = [s for s in consumed if s is not fanout]
    tier = f"hookstream.{names['delivery']}-send.retry.300ms"
    assert sorted(s["name"] for s in sends) == sorted([f"process {deliveries}", f"process {tier}"])
    assert {s["parent"] for s in sends} == {fanout["span_id"]}
    calls = spans_of("delivery", CLIENT)
    codes = sorted(c["attributes"]["http.response.status_code"] for c in calls)
    assert codes == [200, 500]
    first = next(c for c in calls if c["attributes"]["http.response.status_code"] == 500)
    retried = next(c for c in calls if c["attributes"]["http.response.status_code"] == 200)
    assert first["parent"] == fanout["span_id"]  # fan-out's own first attempt
    assert retried["parent"] in {s["span_id"] for s in sends}
    assert retried["attributes"]["url.full"] == f"{partner.url}/traced"
    # The partner can join the trace: each request carried a traceparent of this trace, from its call span.
    sent = [r["headers"]["traceparent"].split("-") for r in partner.at("/traced")]
    assert [(t[1], t[2]) for t in sent] == [(trace_id, first["span_id"]), (trace_id, retried["span_id"])]
    assert [r["headers"].get("tracestate") for r in partner.at("/traced")] == [STATE, STATE]  # carried verbatim
    assert {s["trace_state"] for s in receiver.spans} == {STATE}  # on every span, in every service


CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
STATE = "shopify=t61rcWkgMzE,congo=ucfJifl5GOE"
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5  # opentelemetry.proto Span.SpanKind


def _names(spans: list[dict[str, Any]]) -> str:
    return json.dumps([(s["service"], s["name"], s["kind"], s["parent"][:6]) for s in spans])

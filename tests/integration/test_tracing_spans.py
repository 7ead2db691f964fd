"""The spans a handler's effects add inside its trace: an SMTP send is a CLIENT span, an outbound HTTP
call a CLIENT span whose ``traceparent`` the peer receives; outside a sampled trace, neither. Run in a
child process: a tracer provider is set once per process, and the other tests run with tracing off."""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE

from hookstream_tools.sandbox import SandboxServers

SCRIPT = """
import asyncio, json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, ALWAYS_ON
from hookstream import tracing
from hookstream.connectors.email import Mailer, Rendered, SmtpEndpoint
from hookstream.connectors.http import Endpoint, HttpConnector

exporter = InMemorySpanExporter()
provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracing._enabled = True
smtp_port, crm_url = int(sys.argv[1]), sys.argv[2]
mail = Rendered(subject="Your order", text="Thanks", html="<p>Thanks</p>")
unsampled = trace.NonRecordingSpan(trace.SpanContext(0x1F, 0x2F, is_remote=True, trace_flags=trace.TraceFlags(0)))

async def main():
    mailer = Mailer(SmtpEndpoint("127.0.0.1", smtp_port, setting="T_"))
    crm = HttpConnector(Endpoint("crm", crm_url))
    await mailer.start(); await crm.start()
    with tracing.tracer().start_as_current_span("process orders", kind=trace.SpanKind.CONSUMER):
        await mailer.send(sender="shop@example.com", to="a@example.com", rendered=mail, idempotency_key="k1")
        await crm.call("PUT", "/contacts/a%40example.com", {"email": "a@example.com"}, idempotency_key="k2")
    with trace.use_span(unsampled):
        await mailer.send(sender="shop@example.com", to="b@example.com", rendered=mail, idempotency_key="k3")
    await mailer.stop(); await crm.stop()

asyncio.run(main())
print(json.dumps([
    {"name": s.name, "kind": s.kind.name, "attributes": dict(s.attributes), "span_id": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None}
    for s in exporter.get_finished_spans()
]))
"""


async def test_smtp_and_http_calls_are_client_spans_of_the_handling_span(sandbox: SandboxServers) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, str(sandbox.smtp_port), sandbox.url("crm"), stdout=PIPE, stderr=PIPE
    )  # the sandbox answers from this test's event loop: the child must not block it
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    spans = {s["name"]: s for s in json.loads(out.decode().splitlines()[-1])}
    assert sorted(spans) == ["PUT", "process orders", "smtp send"]  # the unsampled send made no span
    handling = spans["process orders"]
    smtp, call = spans["smtp send"], spans["PUT"]
    assert (smtp["kind"], smtp["parent"]) == ("CLIENT", handling["span_id"])
    assert smtp["attributes"] == {"server.address": "127.0.0.1", "server.port": sandbox.smtp_port}
    assert (call["kind"], call["parent"]) == ("CLIENT", handling["span_id"])
    assert call["attributes"]["url.full"] == sandbox.url("crm") + "/contacts/a%40example.com"
    assert call["attributes"]["http.response.status_code"] == 201  # the sandbox CRM created the contact
    assert [m["rcpt_to"] for m in sandbox.sandbox.emails[-2:]] == [["a@example.com"], ["b@example.com"]]

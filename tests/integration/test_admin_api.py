"""The admin API against the real stack: every auth path, partner scoping, input errors, the audit log,
a retry that reaches Kafka, the order timeline, and schemathesis over real HTTP finding no 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from confluent_kafka import Consumer
from hookstream.db import Database
from hookstream.errors import BrokerUnavailable
from hookstream.store.deliveries import AttemptRecord, DeliveryLog, DeliveryStatus, delivery_id, resend
from hookstream.store.subscriptions import SubscriptionStore
from hookstream.store.tokens import TokenStore
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService
from hookstream_tools.devstack.process import free_port
from standardwebhooks.webhooks import Webhook

from tests.keys import KEYRING
from tests.waiting import until


@dataclass
class World:
    url: str
    db: Database
    tokens: dict[str, str]  # role → secret
    sub_a: str
    sub_b: str
    failed_a: str  # a failed delivery of subscription A
    delivered_b: str
    deliveries_topic: str

    async def call(
        self, method: str, path: str, role: str | None = None, *, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.url + path, headers=headers, data=data) as response,
        ):
            text = await response.text()
            return response.status, json.loads(text) if text else None, dict(response.headers)


@pytest.fixture
async def world(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    allow_targets = getattr(request, "param", ["loopback"])  # tests send to local servers; parametrize to refuse
    async with Database(migrated_database_url) as db:
        subs = SubscriptionStore(db, KEYRING)
        a = await subs.add(name="partner a", url="https://a.example/hooks", event_types=["order.*"])
        b = await subs.add(name="partner b", url="https://b.example/hooks", event_types=["order.paid"])
        store = TokenStore(db)
        tokens = {}
        for role in ("read", "write", "admin"):
            tokens[role] = (await store.create(f"ops {role}", role))[1]
        tokens["partner_a"] = (await store.create("partner a portal", "partner", subscription_id=a.id))[1]
        log = DeliveryLog(db)
        for sub, event, order in ((a.id, "evt-a1", "shopify:1"), (b.id, "evt-b1", "shopify:2")):
            await log.create(
                [(sub, event, order, "order.created")], b'{"order": 1}', [("hookstream-event-id", event.encode())]
            )
        failed_a, delivered_b = delivery_id(a.id, "evt-a1"), delivery_id(b.id, "evt-b1")
        await log.record(failed_a, AttemptRecord(500, 41, "upstream exploded", "HTTP 500"), DeliveryStatus.FAILED)
        await log.record(delivered_b, AttemptRecord(200, 12, "ok", None), DeliveryStatus.DELIVERED)
        settings = AdminSettings(port=0, deliveries_topic=f"{unique_name}.deliveries", allow_targets=allow_targets)
        async with AdminService(kafka_bootstrap, migrated_database_url, settings=settings) as admin:
            yield World(admin.server.url, db, tokens, a.id, b.id, failed_a, delivered_b, settings.deliveries_topic)


async def test_every_call_needs_a_live_token(world: World) -> None:
    status, body, headers = await world.call("GET", "/api/v1/subscriptions")
    assert status == 401
    assert "tokens create" in body["detail"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    world.tokens["bogus"] = "hst_" + "x" * 43
    world.tokens["basic"] = world.tokens["read"]
    assert (await world.call("GET", "/api/v1/subscriptions", "bogus"))[0] == 401
    async with aiohttp.ClientSession() as session:
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        async with session.get(world.url + "/api/v1/subscriptions", headers=basic) as response:
            assert response.status == 401
    status, body, _ = await world.call("GET", "/api/v1/whoami", "read")
    assert (status, body["scope"]) == (200, "read")
    await TokenStore(world.db).revoke(body["id"])
    status, body, _ = await world.call("GET", "/api/v1/whoami", "read")
    assert status == 401
    assert "revoked" in body["detail"]


async def test_scopes_and_the_audit_log(world: World) -> None:
    new = {"name": "partner c", "url": "https://c.example/hooks", "event_types": ["order.*"]}
    status, body, _ = await world.call("POST", "/api/v1/subscriptions", "read", body=new)
    assert (status, body["error"]) == (403, "forbidden")
    assert "'write'" in body["detail"]
    status, created, _ = await world.call("POST", "/api/v1/subscriptions", "write", body=new)
    assert status == 201
    assert created["secret"].startswith("whsec_")  # shown once ...
    status, shown, _ = await world.call("GET", f"/api/v1/subscriptions/{created['id']}", "read")
    assert status == 200
    assert "whsec_" not in json.dumps(shown)  # ... and never again
    assert shown["secrets"] == 1
    status, changed, _ = await world.call(
        "PATCH", f"/api/v1/subscriptions/{created['id']}", "write", body={"timeout_ms": 2500}
    )
    assert (status, changed["timeout_ms"], changed["url"]) == (200, 2500, new["url"])
    status, disabled, _ = await world.call(
        "POST", f"/api/v1/subscriptions/{created['id']}/disable", "write", body={"reason": "partner asked"}
    )
    assert (status, disabled["enabled"], disabled["disabled_reason"]) == (200, False, "partner asked")
    assert (await world.call("GET", "/api/v1/audit", "write"))[0] == 403
    status, audit, _ = await world.call("GET", f"/api/v1/audit?target={created['id']}", "admin")
    assert status == 200
    entries = audit["entries"]
    assert [e["action"] for e in entries] == ["subscription.disable", "subscription.update", "subscription.create"]
    assert {e["actor"].split(":", 1)[1] for e in entries} == {"ops write"}
    update = entries[1]
    assert (update["before"]["timeout_ms"], update["after"]["timeout_ms"]) == (10_000, 2500)
    assert "whsec_" not in json.dumps(entries)


async def test_a_partner_sees_and_changes_only_its_own_endpoint(world: World, kafka_bootstrap: str) -> None:
    status, body, _ = await world.call("GET", "/api/v1/subscriptions", "partner_a")
    assert (status, [s["id"] for s in body["subscriptions"]]) == (200, [world.sub_a])
    assert (await world.call("GET", f"/api/v1/subscriptions/{world.sub_b}", "partner_a"))[0] == 404
    status, body, _ = await world.call("GET", "/api/v1/deliveries", "partner_a")
    assert [d["id"] for d in body["deliveries"]] == [world.failed_a]
    assert (await world.call("GET", f"/api/v1/deliveries?subscription_id={world.sub_b}", "partner_a"))[0] == 404
    assert (await world.call("GET", f"/api/v1/deliveries/{world.delivered_b}", "partner_a"))[0] == 404
    assert (await world.call("POST", f"/api/v1/deliveries/{world.delivered_b}/retry", "partner_a"))[0] == 404
    assert (await world.call("POST", f"/api/v1/subscriptions/{world.sub_b}/rotate-secret", "partner_a"))[0] == 404
    status, body, _ = await world.call("PATCH", f"/api/v1/subscriptions/{world.sub_a}", "partner_a", body={})
    assert status == 403
    assert (await world.call("GET", "/api/v1/orders/shopify:1", "partner_a"))[0] == 403
    assert (await world.call("GET", "/api/v1/audit", "partner_a"))[0] == 403

    status, detail, _ = await world.call("GET", f"/api/v1/deliveries/{world.failed_a}", "partner_a")
    assert (status, detail["status"]) == (200, "failed")
    assert [(a["status_code"], a["response_excerpt"]) for a in detail["attempt_log"]] == [(500, "upstream exploded")]
    status, body, _ = await world.call("POST", f"/api/v1/deliveries/{world.failed_a}/retry", "partner_a")
    assert (status, body["status"]) == (202, "pending")
    status, body, _ = await world.call("POST", f"/api/v1/deliveries/{world.failed_a}/retry", "partner_a")
    assert status == 409  # pending now: being delivered already
    queued = await asyncio.to_thread(_read_one, kafka_bootstrap, world.deliveries_topic)
    assert dict(queued.headers() or [])["hookstream-delivery-id"] == world.failed_a.encode()
    status, rotated, _ = await world.call("POST", f"/api/v1/subscriptions/{world.sub_a}/rotate-secret", "partner_a")
    assert status == 200
    assert rotated["secret"].startswith("whsec_")
    status, sub, _ = await world.call("GET", f"/api/v1/subscriptions/{world.sub_a}", "partner_a")
    assert sub["secrets"] == 2  # the old one signs on during the grace period
    status, audit, _ = await world.call("GET", f"/api/v1/audit?target={world.failed_a}", "admin")
    assert [(e["action"], e["actor"].split(":", 1)[1]) for e in audit["entries"]] == [
        ("delivery.retry", "partner a portal")
    ]


async def test_rotating_a_secret_beyond_the_cap_is_refused_saying_when_the_oldest_expires(world: World) -> None:
    rotate = f"/api/v1/subscriptions/{world.sub_b}/rotate-secret"
    for _ in range(2):  # 1 → 3 active secrets, each signing every delivery for 24 h
        assert (await world.call("POST", rotate, "write"))[0] == 200
    status, body, headers = await world.call("POST", rotate, "write")
    assert (status, body["error"]) == (409, "conflict"), body
    assert body["detail"].startswith(
        f"subscription '{world.sub_b}' already has 3 active secrets; the oldest expires at"
    )
    assert "\n" not in body["detail"]
    assert 23 * 3600 < int(headers["Retry-After"]) <= 24 * 3600
    status, shown, _ = await world.call("GET", f"/api/v1/subscriptions/{world.sub_b}", "read")
    assert shown["secrets"] == 3
    status, audit, _ = await world.call("GET", f"/api/v1/audit?target={world.sub_b}", "admin")
    assert [e["action"] for e in audit["entries"]] == ["subscription.rotate_secret"] * 2  # the refusal changed nothing


async def test_bad_input_gets_a_4xx_that_names_the_field(world: World) -> None:
    cases: list[tuple[str, str, Any, bytes | None, int, str]] = [
        ("POST", "/api/v1/subscriptions", {"name": "x", "event_types": ["order.*"]}, None, 422, "url"),
        (
            "POST",
            "/api/v1/subscriptions",
            {"name": "x", "url": "https://x.example", "event_types": ["order.*"], "colour": "red"},
            None,
            422,
            "colour",
        ),
        (
            "POST",
            "/api/v1/subscriptions",
            {"name": "x", "url": "ftp://x.example", "event_types": ["order.*"]},
            None,
            422,
            "http",
        ),
        ("POST", "/api/v1/subscriptions", None, b"{not json", 400, "JSON object"),
        ("POST", "/api/v1/subscriptions", None, b"[1, 2]", 400, "JSON object"),
        ("PATCH", "/api/v1/subscriptions/sub_nope", {"timeout_ms": 2000}, None, 404, "sub_nope"),
        ("PATCH", f"/api/v1/subscriptions/{world.sub_a}", {"timeout_ms": 5}, None, 422, "timeout_ms"),
        ("GET", "/api/v1/deliveries?status=lost", None, None, 422, "status"),
        ("GET", "/api/v1/deliveries?limit=0", None, None, 422, "limit"),
        ("GET", "/api/v1/deliveries?since=2026-12-01T08:00:00", None, None, 422, "time zone"),
        ("GET", "/api/v1/deliveries?sinse=2026-12-01T08:00:00Z", None, None, 422, "sinse"),
        ("GET", "/api/v1/deliveries/dlv_nope", None, None, 404, "dlv_nope"),
        ("POST", f"/api/v1/deliveries/{world.delivered_b}/retry", None, None, 409, "delivered already"),
        ("GET", "/api/v1/orders/shopify:404", None, None, 404, "shopify:404"),
    ]
    for method, path, body, raw, status, words in cases:
        got, answer, _ = await world.call(method, path, "write", body=body, raw=raw)
        assert (got, words in answer["detail"]) == (status, True), (method, path, answer)
    since = datetime(2020, 1, 1, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    status, body, _ = await world.call("GET", f"/api/v1/deliveries?status=failed&since={since}", "read")
    assert (status, [d["id"] for d in body["deliveries"]]) == (200, [world.failed_a])


async def test_an_order_timeline_across_services(world: World) -> None:
    async with world.db.connection() as conn:
        await conn.execute(
            "INSERT INTO orders (order_id, channel, status, sequence) VALUES ('shopify:1', 'shopify', 'paid', 2)"
        )
        await conn.execute(
            """INSERT INTO order_timeline (order_id, event_id, type, occurred_at, outcome, sequence) VALUES
               ('shopify:1', 'evt-a1', 'order.created', now() - interval '1 minute', 'applied', 1),
               ('shopify:1', 'evt-a2', 'order.paid', now(), 'applied', 2)"""
        )
        await conn.execute(
            """INSERT INTO workflow_steps (service, event_id, step, result) VALUES
               ('crm', 'evt-a1', 'order', '{"id": "crm_7"}'), ('fulfillment', 'evt-a2', 'warehouse', '{"id": "f_1"}')"""
        )
        await conn.execute("INSERT INTO order_refs (order_id, system, ref) VALUES ('shopify:1', 'crm', 'crm_7')")
    status, body, _ = await world.call("GET", "/api/v1/orders/shopify:1", "read")
    assert status == 200
    assert body["order"]["status"] == "paid"
    assert [(t["type"], t["outcome"]) for t in body["timeline"]] == [
        ("order.created", "applied"),
        ("order.paid", "applied"),
    ]
    assert [(s["service"], s["step"]) for s in body["workflow_steps"]] == [
        ("crm", "order"),
        ("fulfillment", "warehouse"),
    ]
    assert [d["id"] for d in body["deliveries"]] == [world.failed_a]
    assert body["refs"] == {"crm": "crm_7"}


async def test_a_change_and_its_audit_entry_are_one_transaction(world: World) -> None:
    async with world.db.connection() as conn:  # the audit entry of an update cannot be written
        await conn.execute("ALTER TABLE audit_log ADD CONSTRAINT no_updates CHECK (action <> 'subscription.update')")
    status, body, _ = await world.call("PATCH", f"/api/v1/subscriptions/{world.sub_a}", "write", body={"name": "x"})
    assert (status, body["error"]) == (500, "internal")
    _, shown, _ = await world.call("GET", f"/api/v1/subscriptions/{world.sub_a}", "read")
    assert shown["name"] == "partner a"  # no change without its entry
    status, _, _ = await world.call("POST", f"/api/v1/subscriptions/{world.sub_a}/disable", "write")
    assert status == 200
    _, entries, _ = await world.call("GET", "/api/v1/audit", "admin")
    assert [e["action"] for e in entries["entries"]] == ["subscription.disable"]


async def test_the_overview_and_each_endpoints_health(world: World) -> None:
    async with world.db.connection() as conn:
        ingested = [("shopify:1", "evt-a1", "shopify"), ("shopify:3", "evt-c1", "shopify")]
        for order, event, channel in [*ingested, ("woocommerce:9", "evt-w1", "woocommerce")]:
            await conn.execute(  # normalized 250 ms after the ingress took it
                """INSERT INTO order_timeline
                        (order_id, event_id, type, occurred_at, outcome, sequence, channel, received_at)
                    VALUES (%s, %s, 'order.created', now(), 'applied', 1, %s, now() - interval '250 ms')""",
                (order, event, channel),
            )
        await conn.execute(  # a delivery instance's open breaker for A, and one from an instance long gone for B
            """INSERT INTO endpoint_circuits (subscription_id, instance, expires_at)
               VALUES (%s, 'host-1:41', now() + interval '90 s'), (%s, 'host-2:7', now() - interval '1 s')""",
            (world.sub_a, world.sub_b),
        )
        # Delivered (a 2xx) 2 s after the ingress took it.
        await conn.execute(
            """INSERT INTO order_timeline
                   (order_id, event_id, type, occurred_at, outcome, sequence, channel, received_at)
               VALUES ('shopify:2', 'evt-b1', 'order.created', now(), 'applied', 1, 'shopify',
                       (SELECT attempted_at FROM delivery_attempts WHERE delivery_id = %s) - interval '2 s')""",
            (world.delivered_b,),
        )
    status, body, _ = await world.call("GET", "/api/v1/overview", "read")
    assert status == 200, body
    assert {c["channel"]: c["webhooks"] for c in body["intake"]["channels"]} == {"shopify": 3, "woocommerce": 1}
    assert body["intake"]["per_s"] == round(4 / body["intake"]["rate_window_s"], 2)
    assert sum(next(c for c in body["intake"]["channels"] if c["channel"] == "shopify")["series"]) > 0
    assert body["latency"]["ingest"]["samples"] == 4
    assert body["latency"]["ingest"]["p50_ms"] == 250.0
    assert body["latency"]["delivery"] == {"samples": 1, "p50_ms": 2000.0, "p95_ms": 2000.0, "p99_ms": 2000.0}
    assert (body["deliveries"]["attempts"], body["deliveries"]["succeeded"]) == (2, 1)
    assert body["deliveries"]["success_rate"] == 0.5
    health = {e["subscription_id"]: e for e in body["endpoints"]}
    assert health[world.sub_b]["state"] == "healthy"
    assert health[world.sub_b]["circuit"] == {"state": "closed"}
    assert (health[world.sub_a]["circuit"]["state"], health[world.sub_a]["circuit"]["instances"]) == ("open", 1)
    assert health[world.sub_a]["state"] in ("failing", "degraded")
    assert health[world.sub_a]["last_failure"]["explanation"] == (
        "500: the endpoint failed or is busy; retried with backoff"
    )
    assert all(q["dead_letters"] >= 0 for q in body["dead_letters"])

    assert (await world.call("GET", "/api/v1/overview", "partner_a"))[0] == 403
    status, mine, _ = await world.call("GET", "/api/v1/endpoints", "partner_a")
    assert status == 200
    assert [e["subscription_id"] for e in mine["endpoints"]] == [world.sub_a]
    status, detail, _ = await world.call("GET", f"/api/v1/deliveries/{world.failed_a}", "partner_a")
    assert detail["attempt_log"][0]["explanation"].startswith("500: the endpoint failed or is busy")


async def test_the_dashboard_is_served_with_a_strict_content_security_policy(world: World) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(world.url + "/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (307, "/ui/")
        async with session.get(world.url + "/ui/") as response:
            assert response.status == 200
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
            page = await response.text()
            assert '<script type="module" src="/ui/assets/app.js">' in page
            assert "<script>" not in page  # nothing inline: the policy allows none
        async with session.get(world.url + "/ui/assets/app.js") as response:
            assert response.status == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "innerHTML" not in await response.text()  # built with textContent only
        async with session.get(world.url + "/ui/assets/nope.js") as response:
            assert response.status == 404


async def test_recover_queues_an_endpoints_failed_and_on_request_skipped_deliveries(
    world: World, kafka_bootstrap: str
) -> None:
    log = DeliveryLog(world.db)
    await log.create([(world.sub_a, "evt-a2", "shopify:3", "order.paid")], b"{}", [])
    skipped = delivery_id(world.sub_a, "evt-a2")
    await log.mark(skipped, DeliveryStatus.SKIPPED, "the endpoint was disabled")
    await SubscriptionStore(world.db, KEYRING).mark_failing(world.sub_a)
    status, sub, _ = await world.call("GET", f"/api/v1/subscriptions/{world.sub_a}", "read")
    assert (status, sub["failing_since"] is not None) == (200, True)  # endpoint health
    path = f"/api/v1/subscriptions/{world.sub_a}/recover"
    status, body, _ = await world.call("POST", path, "write", body={"since": "2026-12-01T08:00:00"})
    assert (status, "time zone" in body["detail"]) == (422, True)
    status, body, _ = await world.call("POST", path, "partner_a", body={"since": "2020-01-01T00:00:00Z"})
    assert (status, body["queued"]) == (202, 1)  # the failed one
    status, body, _ = await world.call(
        "POST", path, "write", body={"since": "2020-01-01T00:00:00Z", "include_skipped": True}
    )
    assert (status, body["queued"]) == (202, 1)  # the skipped one (the failed one is pending now)
    assert await log.status(skipped) == DeliveryStatus.PENDING
    status, _, _ = await world.call(
        "POST", f"/api/v1/subscriptions/{world.sub_b}/recover", "partner_a", body={"since": "2020-01-01T00:00:00Z"}
    )
    assert status == 404


async def test_a_test_event_is_signed_sent_now_and_its_answer_explained(world: World) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    answers = [web.Response(text="thanks"), web.Response(status=503, text="maintenance until 10:00")]

    async def endpoint(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return answers[len(received) - 1]

    app = web.Application()
    app.router.add_post("/hooks", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        subs = SubscriptionStore(world.db, KEYRING)
        local = await subs.add(name="local", url=f"http://127.0.0.1:{port}/hooks", event_types=["order.*"])
        status, body, _ = await world.call("POST", f"/api/v1/subscriptions/{local.id}/test", "write")
        assert (status, body["delivered"], body["status_code"], body["response_excerpt"]) == (200, True, 200, "thanks")
        headers, payload = received[0]
        verified = Webhook(local.signing_secrets()[0]).verify(payload, headers)  # the partner's own check
        assert verified["type"] == "webhook.test"
        status, body, _ = await world.call("POST", f"/api/v1/subscriptions/{local.id}/test", "write")
        assert (status, body["delivered"], body["status_code"]) == (200, False, 503)
        assert "failed or is busy" in body["explanation"]
        assert "maintenance" in body["response_excerpt"]
        status, body, _ = await world.call("POST", f"/api/v1/subscriptions/{world.sub_a}/test", "partner_a")
        assert (status, body["delivered"], body["status_code"]) == (200, False, None)  # a.example: no such host here
        assert body["explanation"].startswith("DNS: the endpoint's host name does not resolve")
        assert (await world.call("POST", f"/api/v1/subscriptions/{local.id}/test", "partner_a"))[0] == 404
        assert (await world.call("POST", f"/api/v1/subscriptions/{local.id}/test", "read"))[0] == 403
    finally:
        await runner.cleanup()


INTERNAL_FORMS = ["[::1%251]", "2130706433"]  # ::1 with a zone id, 127.0.0.1 as one number


@pytest.mark.parametrize("world", [[]], indirect=True, ids=["nothing-allowed"])
async def test_a_url_naming_an_internal_address_in_any_form_is_refused_when_saved(world: World) -> None:
    for host in INTERNAL_FORMS:
        new = {"name": "sneaky", "url": f"http://{host}:8080/", "event_types": ["order.*"]}
        status, body, _ = await world.call("POST", "/api/v1/subscriptions", "write", body=new)
        assert (status, body["error"]) == (422, "invalid"), body
        assert body["detail"].startswith(f"url: {host.strip('[]')} resolves to ")
        assert "(loopback address): refused to prevent SSRF" in body["detail"]
        change = {"url": new["url"]}
        status, body, _ = await world.call("PATCH", f"/api/v1/subscriptions/{world.sub_a}", "write", body=change)
        assert (status, body["error"]) == (422, "invalid"), body
    status, shown, _ = await world.call("GET", f"/api/v1/subscriptions/{world.sub_a}", "read")
    assert shown["url"] == "https://a.example/hooks"
    status, body, _ = await world.call("GET", "/api/v1/subscriptions", "read")
    assert "sneaky" not in {s["name"] for s in body["subscriptions"]}


@pytest.mark.parametrize("world", [[]], indirect=True, ids=["nothing-allowed"])
async def test_a_test_send_to_an_internal_address_saved_behind_the_apis_back_is_refused(world: World) -> None:
    heard: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        heard.append(request.path)
        return web.Response(text="internal secret")

    app = web.Application()
    app.router.add_post("/hooks", internal)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    for listen in ("127.0.0.1", "::1"):
        await web.TCPSite(runner, listen, port).start()
    try:
        for host in INTERNAL_FORMS:
            sub = await SubscriptionStore(world.db, KEYRING).add(
                name=f"saved as {host}", url=f"http://{host}:{port}/hooks", event_types=["order.*"]
            )
            _, world.tokens[host] = await TokenStore(world.db).create(
                f"{host} portal", "partner", subscription_id=sub.id
            )
            status, body, _ = await world.call("POST", f"/api/v1/subscriptions/{sub.id}/test", host)
            assert status == 200
            assert (body["delivered"], body["status_code"], body["response_excerpt"]) == (False, None, None), body
            assert "refused to prevent SSRF" in body["error"]
            assert "internal secret" not in json.dumps(body)
        assert heard == []
    finally:
        await runner.cleanup()


async def test_a_retry_that_cannot_be_queued_leaves_the_delivery_as_it_was(world: World) -> None:
    class BrokerDown:
        async def send(self, *args: Any, **kwargs: Any) -> None:
            raise BrokerUnavailable("Kafka at 127.0.0.1:1 did not answer")

    with pytest.raises(BrokerUnavailable):
        await resend(world.db, BrokerDown(), delivery=world.failed_a)  # type: ignore[arg-type]
    assert await DeliveryLog(world.db).status(world.failed_a) == DeliveryStatus.FAILED  # not stuck "pending"


def _read_one(bootstrap: str, topic: str) -> Any:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{topic}.reader", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"nothing arrived on {topic}")
    finally:
        consumer.close()


def test_hookstream_run_admin_serves_and_schemathesis_finds_no_server_error(
    kafka_bootstrap: str, migrated_database_url: str, tmp_path: Any
) -> None:
    """The service as deployed (`hookstream run admin`), probed, then fuzzed from its OpenAPI document."""
    port, health = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_ADMIN_PORT": str(port),
        "HOOKSTREAM_HEALTH_PORT": str(health),
    }
    created = subprocess.run(
        [sys.executable, "-m", "hookstream", "tokens", "create", "fuzzer", "--scope", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("hst_")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookstream", "run", "admin"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        asyncio.run(until(lambda: _get(f"http://127.0.0.1:{health}/readyz") == 200, timeout_s=60, what="admin ready"))
        fuzz = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"http://127.0.0.1:{port}/openapi.yaml",
                "-H",
                f"Authorization: Bearer {secret}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--seed",
                "7",
                "--workers",
                "1",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            check=False,
        )
        assert fuzz.returncode == 0, fuzz.stdout[-4000:] + fuzz.stderr[-2000:]
        assert "passed" in fuzz.stdout
        assert "Authentication failed" not in fuzz.stdout  # it fuzzed the API, not just the 401s
        token_id = created.stdout.split()[0]
        listed = subprocess.run(
            [sys.executable, "-m", "hookstream", "tokens", "list"], env=env, capture_output=True, text=True, check=True
        )
        line = next(x for x in listed.stdout.splitlines() if x.startswith(token_id))
        assert "fuzzer  admin" in line
        assert "never used" not in line
        revoked = subprocess.run(
            [sys.executable, "-m", "hookstream", "tokens", "revoke", token_id], env=env, capture_output=True, text=True
        )
        assert revoked.returncode == 0, revoked.stderr
        assert _get(f"http://127.0.0.1:{port}/api/v1/whoami", secret) == 401
        unknown = subprocess.run(
            [sys.executable, "-m", "hookstream", "tokens", "revoke", "tok_nope"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert (unknown.returncode, unknown.stderr.strip()) == (
            1,
            "error: no token 'tok_nope'; `hookstream tokens list` shows them",
        )
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err


def _get(url: str, token: str | None = None) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - a local test URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0

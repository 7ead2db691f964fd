"""Built-in alerting: a dead letter fires one alert (not one per evaluation) to a Slack-shaped webhook,
a PagerDuty-Events-v2-shaped endpoint and e-mail (the sandbox's SMTP server), and its redrive resolves
it, under the same dedup key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hookstream.db import Database
from hookstream.store.alerts import AlertStore, Change
from hookstream.store.deliveries import DeliveryLog, delivery_id
from hookstream.store.subscriptions import SubscriptionStore
from hookstream.store.tokens import TokenStore
from hookstream.store.volume import ChannelVolume, Volume
from hookstream_services.admin.alerting import Alerting
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.rules import DEAD_LETTERED, volume_drop
from hookstream_services.admin.service import AdminService
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_services.delivery.service import DeliveryService, DeliverySettings
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers

from tests.integration.test_delivery import canonical
from tests.keys import KEYRING
from tests.partner import running_partner
from tests.sandbox_process import set_faults
from tests.waiting import until


@dataclass
class Sink:
    """A Slack- and PagerDuty-shaped receiver: every request, the ones it accepted, and how many to refuse first."""

    port: int
    received: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"slack": [], "pagerduty": []})
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"slack": [], "pagerduty": []})
    failing: dict[str, int] = field(default_factory=dict)

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    found = Sink(free_port())

    async def hook(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.json()
        found.received[kind].append(body)
        if found.failing.get(kind, 0) > 0:
            found.failing[kind] -= 1
            return web.json_response({"error": "try later"}, status=500)
        found.accepted[kind].append(body)
        return web.json_response({"status": "success"}, status=202 if kind == "pagerduty" else 200)

    app = web.Application()
    app.router.add_post("/{kind}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


async def test_a_dead_letter_fires_one_alert_and_its_redrive_resolves_it(
    kafka_bootstrap: str,
    migrated_database_url: str,
    unique_name: str,
    sandbox: SandboxServers,
    publish: Any,
    monkeypatch: pytest.MonkeyPatch,
    sink: Sink,
) -> None:
    received = sink.received
    port = sink.port
    name = f"crm-{unique_name}"
    monkeypatch.setenv("HOOKSTREAM_CRM_SERVICE_NAME", name)  # the admin finds consumers through the registry
    crm = CrmSettings(url=sandbox.url("crm"), commit_interval_ms=200, service_name=name, input_topic=publish.topic)
    settings = AdminSettings(
        port=0,
        deliveries_topic=f"{unique_name}.deliveries",
        alert_interval_s=0.3,
        alert_feed_name=f"admin-alerts-{unique_name}",
        alerts_topic=f"{unique_name}.alerts",
        alert_slack_url=f"http://127.0.0.1:{port}/slack",
        alert_pagerduty_url=f"http://127.0.0.1:{port}/pagerduty",
        alert_pagerduty_routing_key="R0UT1NGKEY",
        alert_email_to=["oncall@example.com"],
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=sandbox.smtp_port,
    )
    async with Database(migrated_database_url) as db:
        _, writer = await TokenStore(db).create("ops", "write")
    await set_faults(sandbox, "crm", refuse=True)

    def about_us(kind: str) -> list[dict[str, Any]]:
        if kind == "email":
            return [m for m in sandbox.sandbox.emails if m["subject"].endswith(f": dead_letters on {name}")]
        if kind == "slack":
            return [m for m in received["slack"] if f"[hookstream dead_letters] {name}:" in m["text"]]
        return [e for e in received["pagerduty"] if e["dedup_key"] == f"hookstream:dead_letters:{name}"]

    async with (
        AdminService(kafka_bootstrap, migrated_database_url, settings=settings) as admin,
        CrmService(kafka_bootstrap, migrated_database_url, settings=crm),
    ):
        await publish(canonical("a1", "shopify:1", 1, "order.created"))
        await until(lambda: len(about_us("slack")) == 1, 30, "the dead letter's alert")
        await asyncio.sleep(1.5)  # five more evaluations: the alert is not told again
        [fired] = about_us("slack")
        assert fired["text"] == (
            f":rotating_light: FIRING [hookstream dead_letters] {name}: 1 dead letter(s) waiting in"
            f" hookstream.{name}.dlq"
        )
        await until(lambda: len(about_us("email")) == 1, 10, "the alert's e-mail")
        [mail] = about_us("email")
        assert (mail["subject"], mail["rcpt_to"]) == (
            f"[hookstream] FIRING: dead_letters on {name}",
            ["oncall@example.com"],
        )
        assert f"FIRING: {name}: 1 dead letter(s) waiting" in mail["text"]
        [trigger] = about_us("pagerduty")
        assert (trigger["event_action"], trigger["routing_key"]) == ("trigger", "R0UT1NGKEY")
        assert trigger["payload"]["summary"].startswith(f"{name}: 1 dead letter(s) waiting")

        await set_faults(sandbox, "crm")  # fixed: send it back
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {writer}"}) as http,
            http.post(f"{admin.server.url}/api/v1/dead-letters/{name}/redrive", json={"all": True}) as answer,
        ):
            assert answer.status == 200, await answer.text()
        await until(lambda: len(about_us("slack")) == 2, 30, "the resolved message")
        resolved = about_us("slack")[1]
        assert resolved["text"].startswith(f":white_check_mark: RESOLVED [hookstream dead_letters] {name}: 0 dead")
        # the notifiers are told one after another: PagerDuty's resolve may follow Slack's by a moment
        await until(lambda: len(about_us("pagerduty")) == 2, 10, "the PagerDuty resolve")
        assert [e["event_action"] for e in about_us("pagerduty")] == ["trigger", "resolve"]
        await until(lambda: len(about_us("email")) == 2, 10, "the resolved e-mail")
        assert about_us("email")[1]["subject"] == f"[hookstream] RESOLVED: dead_letters on {name}"
        body: dict[str, Any] = {}

        async def all_told() -> bool:
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {writer}"}) as http,
                http.get(f"{admin.server.url}/api/v1/alerts") as answer,
            ):
                body.update(await answer.json())
            mine = [e for e in body["history"] if e["subject"] == name]
            return [(e["kind"], e["notified"], e["undelivered"]) for e in mine] == [
                ("resolved", ["slack", "pagerduty", "email"], []),
                ("fired", ["slack", "pagerduty", "email"], []),
            ]

        await until(all_told, 10, "the history: fired and resolved, each told to all three")
    assert all(f["subject"] != name for f in body["firing"])


async def test_a_flapping_condition_is_told_once_per_cooldown(migrated_database_url: str) -> None:
    told = ["slack"]
    async with Database(migrated_database_url) as db:
        store = AlertStore(db)

        async def change(firing: bool, summary: str) -> Change | None:
            return await store.change("lag", "crm", firing, summary, cooldown_s=600, notifiers=told)

        assert await change(False, "crm is 0 behind") is None  # never fired: nothing to say
        fired = await change(True, "crm is 20000 behind")
        assert fired is not None
        assert (fired.firing, fired.notify) == (True, True)
        assert await change(True, "crm is 21000 behind") is None  # no change
        resolved = await change(False, "crm is 0 behind")
        assert resolved is not None
        assert (resolved.firing, resolved.notify) == (False, True)  # its firing was told: so is this
        again = await change(True, "crm is 20000 behind")
        assert again is not None
        assert again.notify is False  # within the cooldown of the last one told
        quiet = await change(False, "crm is 0 behind")
        assert quiet is not None
        assert quiet.notify is False  # nobody was told it fired
        assert [e.kind for e in reversed(await store.history())] == ["fired", "resolved", "fired", "resolved"]
        queued = await store.claim()
        assert [(n.firing, n.summary) for n in queued] == [(True, "crm is 20000 behind"), (False, "crm is 0 behind")]
        assert await store.claim() == []  # claimed: not handed out twice


async def test_a_notifier_that_failed_is_tried_again_then_given_up(migrated_database_url: str, sink: Sink) -> None:
    sink.failing["slack"] = 1  # Slack refuses once, PagerDuty every time
    sink.failing["pagerduty"] = 100
    settings = AdminSettings(
        alert_slack_url=sink.url("slack"),
        alert_pagerduty_url=sink.url("pagerduty"),
        alert_pagerduty_routing_key="R0UT1NGKEY",
        alert_retry_delays=["100ms", "100ms"],
    )
    figures = {
        "dead_letters": [{"consumer": "crm", "topic": "t.dlq", "not_redriven": 2}],
        "consumers": [],
        "endpoints": [],
    }

    async def overview() -> dict[str, Any]:
        return figures

    async with Database(migrated_database_url) as db:
        store = AlertStore(db)
        alerting = Alerting(store, Volume(db), DeliveryLog(db), overview, settings)
        try:
            [change] = await alerting.evaluate_once()
            assert change.notify
            assert await alerting.tell_due() == 0  # both failed
            assert await alerting.tell_due() == 0  # and are not due again yet
            await asyncio.sleep(0.15)
            assert await alerting.tell_due() == 1  # Slack took it; PagerDuty failed a second time
            await asyncio.sleep(0.15)
            assert await alerting.tell_due() == 0  # PagerDuty's third and last try
            await asyncio.sleep(0.15)
            assert await alerting.tell_due() == 0
        finally:
            await alerting.stop()
        [entry] = await store.history()
    assert [m["text"] for m in sink.accepted["slack"]] == [
        ":rotating_light: FIRING [hookstream dead_letters] crm: 2 dead letter(s) waiting in t.dlq"
    ]
    assert len(sink.received["slack"]) == 2
    assert len(sink.received["pagerduty"]) == 3  # once and after each of the two retry delays
    assert entry.notified == ["slack"]
    [given_up] = entry.undelivered
    assert (given_up["notifier"], given_up["state"], given_up["attempts"]) == ("pagerduty", "failed", 3)
    assert "500" in given_up["last_error"]


async def test_a_channel_under_a_fifth_of_yesterday_fires_volume_drop(migrated_database_url: str) -> None:
    yesterday = "now() - interval '1 day 30 minutes'"
    recent = "now() - interval '30 minutes'"
    async with Database(migrated_database_url) as db:
        async with db.connection() as conn:
            for batch, (channel, when, n) in enumerate(
                [
                    ("woo", yesterday, 150),  # went quiet: fires
                    ("shopify", yesterday, 150),
                    ("shopify", recent, 100),  # two thirds of yesterday: fine
                    ("stripe", yesterday, 50),  # too quiet yesterday to judge
                    ("custom", recent, 10),  # new today
                ]
            ):
                await conn.execute(
                    f"""INSERT INTO order_timeline
                            (order_id, event_id, type, occurred_at, outcome, channel, received_at)
                        SELECT 'o-' || i, %s || '-' || i, 'order.created', now(), 'applied', %s, {when}
                        FROM generate_series(1, %s) i""",  # noqa: S608 - the test's own two expressions
                    (f"{channel}-{batch}", channel, n),
                )
        volume = Volume(db)
        await volume.count_settled()
        await volume.count_settled()  # again: nothing counted twice
        volumes = await volume.against_yesterday()
    assert volumes == [
        ChannelVolume("custom", 10, 0),
        ChannelVolume("shopify", 100, 150),
        ChannelVolume("stripe", 0, 50),
        ChannelVolume("woo", 0, 150),
    ]
    firing = [(c.subject, c.summary) for c in volume_drop(volumes, AdminSettings()) if c.firing]
    assert firing == [("woo", "woo: 0 webhook(s) in the last hour against 150 in the same hour yesterday")]


async def test_a_delivery_given_up_is_told_with_its_event_order_and_reason_and_resolved_once_redriven(
    kafka_bootstrap: str,
    migrated_database_url: str,
    unique_name: str,
    publish: Any,
    monkeypatch: pytest.MonkeyPatch,
    sink: Sink,
) -> None:
    delivery = DeliverySettings(
        service_name=f"delivery-{unique_name}",
        canonical_topic=publish.topic,
        deliveries_topic=f"{unique_name}.deliveries",
        alerts_topic=f"{unique_name}.alerts",
        retry_schedule=["200ms"],
        retry_jitter=0,
        allow_targets=["loopback"],
        subscription_refresh_ms=100,
        commit_interval_ms=200,
        breaker_min_calls=100,
    )
    for field_name in ("service_name", "canonical_topic", "deliveries_topic", "alerts_topic"):
        # the admin finds the delivery's consumers through the registry, which reads the environment
        monkeypatch.setenv(f"HOOKSTREAM_DELIVERY_{field_name.upper()}", getattr(delivery, field_name))
    settings = AdminSettings(
        port=0,
        deliveries_topic=delivery.deliveries_topic,
        alerts_topic=delivery.alerts_topic,
        alert_feed_name=f"admin-alerts-{unique_name}",
        alert_interval_s=0.3,
        alert_dispatch_interval_s=0.2,
        alert_slack_url=sink.url("slack"),
    )

    def told(rule: str) -> list[str]:
        return [m["text"] for m in sink.accepted["slack"] if f"[hookstream {rule}]" in m["text"]]

    async with running_partner() as partner:
        async with Database(migrated_database_url) as db:
            _, writer = await TokenStore(db).create("ops", "write")
            sub = await SubscriptionStore(db, KEYRING).add(
                name="erp", url=f"{partner.url}/erp", event_types=["order.*"]
            )
        given_up = delivery_id(sub.id, "d-1")
        partner.script["/erp"] = [(500, {}), (500, {})]  # both attempts fail; the redriven one succeeds
        async with (
            AdminService(kafka_bootstrap, migrated_database_url, settings=settings) as admin,
            DeliveryService(kafka_bootstrap, migrated_database_url, settings=delivery) as service,
        ):
            await publish(canonical("d-1", "shopify:42", 1, "order.created"))
            await until(lambda: bool(told(DEAD_LETTERED)), 30, "the given-up delivery's alert")
            assert told(DEAD_LETTERED) == [
                f":rotating_light: FIRING [hookstream {DEAD_LETTERED}] delivery {given_up} to erp"
                f" ({partner.url}/erp) given up after 2 attempt(s): event d-1 (order.created) of order shopify:42:"
                f" {partner.url}/erp: HTTP 500"
            ]
            assert (await service.deliveries.get(given_up) or {})["status"] == "failed"
            await asyncio.sleep(1)  # three more evaluations: told once
            assert len(told(DEAD_LETTERED)) == 1

            consumer = service.sending.service
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {writer}"}) as http,
                http.post(f"{admin.server.url}/api/v1/dead-letters/{consumer}/redrive", json={"all": True}) as answer,
            ):
                assert answer.status == 200, await answer.text()
            await until(lambda: len(told(DEAD_LETTERED)) == 2, 30, "the resolved message")
    assert told(DEAD_LETTERED)[1] == (
        f":white_check_mark: RESOLVED [hookstream {DEAD_LETTERED}] delivery {given_up}: delivered after all"
    )
    assert [r["status"] for r in partner.at("/erp")] == [500, 500, 200]

"""Built-in alerting: a dead letter fires one alert (not one per evaluation) to a Slack-shaped webhook,
a PagerDuty-Events-v2-shaped endpoint and e-mail (the sandbox's SMTP server), and its redrive resolves
it, under the same dedup key."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hookstream.db import Database
from hookstream.store.alerts import AlertStore
from hookstream.store.tokens import TokenStore
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers

from tests.integration.test_delivery import canonical
from tests.sandbox_process import set_faults
from tests.waiting import until


async def test_a_dead_letter_fires_one_alert_and_its_redrive_resolves_it(
    kafka_bootstrap: str,
    migrated_database_url: str,
    unique_name: str,
    sandbox: SandboxServers,
    publish: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: dict[str, list[dict[str, Any]]] = {"slack": [], "pagerduty": []}

    async def hook(request: web.Request) -> web.Response:
        received[request.match_info["kind"]].append(await request.json())
        return web.json_response(
            {"status": "success"}, status=202 if request.match_info["kind"] == "pagerduty" else 200
        )

    app = web.Application()
    app.router.add_post("/{kind}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    name = f"crm-{unique_name}"
    monkeypatch.setenv("HOOKSTREAM_CRM_SERVICE_NAME", name)  # the admin finds consumers through the registry
    crm = CrmSettings(url=sandbox.url("crm"), commit_interval_ms=200, service_name=name, input_topic=publish.topic)
    settings = AdminSettings(
        port=0,
        deliveries_topic=f"{unique_name}.deliveries",
        alert_interval_s=0.3,
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

    try:
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
            assert [e["event_action"] for e in about_us("pagerduty")] == ["trigger", "resolve"]
            await until(lambda: len(about_us("email")) == 2, 10, "the resolved e-mail")
            assert about_us("email")[1]["subject"] == f"[hookstream] RESOLVED: dead_letters on {name}"
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {writer}"}) as http,
                http.get(f"{admin.server.url}/api/v1/alerts") as answer,
            ):
                body = await answer.json()
        mine = [e for e in body["history"] if e["subject"] == name]
        assert [(e["kind"], e["notified"]) for e in mine] == [
            ("resolved", ["slack", "pagerduty", "email"]),
            ("fired", ["slack", "pagerduty", "email"]),
        ]
        assert all(f["subject"] != name for f in body["firing"])
    finally:
        await runner.cleanup()


async def test_a_flapping_condition_is_told_once_per_cooldown(migrated_database_url: str) -> None:
    async with Database(migrated_database_url) as db:
        store = AlertStore(db)
        assert await store.transition("lag", "crm", False, "crm is 0 behind", cooldown_s=600) is None  # never fired
        fired = await store.transition("lag", "crm", True, "crm is 20000 behind", cooldown_s=600)
        assert fired is not None
        assert (fired.firing, fired.notify) == (True, True)
        assert await store.transition("lag", "crm", True, "crm is 21000 behind", cooldown_s=600) is None  # no change
        await store.record(fired, ["slack"])
        resolved = await store.transition("lag", "crm", False, "crm is 0 behind", cooldown_s=600)
        assert resolved is not None
        assert (resolved.firing, resolved.notify) == (False, True)  # its firing was told: so is this
        await store.record(resolved, ["slack"])
        again = await store.transition("lag", "crm", True, "crm is 20000 behind", cooldown_s=600)
        assert again is not None
        assert again.notify is False  # within the cooldown of the last one told
        await store.record(again, [])
        quiet = await store.transition("lag", "crm", False, "crm is 0 behind", cooldown_s=600)
        assert quiet is not None
        assert quiet.notify is False  # nobody was told it fired
        assert [e.kind for e in await store.history()] == ["fired", "resolved", "fired"]

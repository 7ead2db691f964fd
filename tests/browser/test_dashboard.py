"""The dashboard in a real headless Chromium over the real pipeline: webhooks in at ingress, normalized,
delivered to partners (one failing), synced to a CRM that refuses at first. An operator signs in, sees the
overview's live numbers, retries the failed delivery, redrives a dead letter and reads an order's timeline;
a partner signs in and sees only its own endpoint. Screenshots go to ``HOOKSTREAM_ARTIFACTS`` (default
``build/test-artifacts``)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import httpx2 as httpx
import pytest
from hookstream.consumer import ConsumerSettings
from hookstream.db import Database
from hookstream.store.deliveries import delivery_id
from hookstream.store.subscriptions import SubscriptionStore
from hookstream.store.tokens import TokenStore
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_services.delivery.service import DeliveryService, DeliverySettings
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hookstream_services.ingress.publisher import KafkaPublisher
from hookstream_services.normalizer.service import NormalizerService, NormalizerSettings
from hookstream_tools.sandbox import SandboxServers
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Shots
from tests.keys import KEYRING
from tests.partner import Answer, running_partner
from tests.sandbox_process import set_faults
from tests.signing import signed_sample, write_config
from tests.waiting import until

SENT = [
    "shopify_orders_create",
    "shopify_orders_paid",
    "woocommerce_order_created",
    "custom_order_created",
    "stripe_payment_intent_succeeded",
    "shopify_orders_fulfilled",
]
ORDER = "shopify:5612345678901"
CREATED_EVENT = "shopify:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"  # the sample's orders/create webhook, namespaced


async def test_operator_and_partner_work_the_dashboard(
    kafka_bootstrap: str,
    migrated_database_url: str,
    unique_name: str,
    tmp_path: Path,
    sandbox: SandboxServers,
    browser: Browser,
    shots: Shots,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw, canonical = f"{unique_name}.raw", f"{unique_name}.canonical"
    names = {s: f"{s}-{unique_name}" for s in ("normalizer", "delivery", "crm")}
    # The admin finds consumers through the registry, which reads the same settings the services do.
    for key, value in {
        "NORMALIZER_SERVICE_NAME": names["normalizer"],
        "NORMALIZER_RAW_TOPIC": raw,
        "NORMALIZER_CANONICAL_TOPIC": canonical,
        "DELIVERY_SERVICE_NAME": names["delivery"],
        "DELIVERY_CANONICAL_TOPIC": canonical,
        "DELIVERY_DELIVERIES_TOPIC": f"{unique_name}.deliveries",
        "CRM_SERVICE_NAME": names["crm"],
        "CRM_INPUT_TOPIC": canonical,
        "CRM_URL": sandbox.url("crm"),
    }.items():
        monkeypatch.setenv(f"HOOKSTREAM_{key}", value)
    consumer = ConsumerSettings(commit_interval_ms=200)
    normalizer = NormalizerService(
        kafka_bootstrap, migrated_database_url, settings=NormalizerSettings(), consumer=consumer
    )
    delivery = DeliveryService(
        kafka_bootstrap,
        migrated_database_url,
        settings=DeliverySettings(
            retry_schedule=["200ms", "400ms"],
            allow_targets=["loopback"],
            subscription_refresh_ms=100,
            breaker_min_calls=100,
            commit_interval_ms=200,
        ),
    )
    crm = CrmService(kafka_bootstrap, migrated_database_url, settings=CrmSettings(commit_interval_ms=200))
    admin_settings = AdminSettings(port=0, deliveries_topic=f"{unique_name}.deliveries", allow_targets=["loopback"])
    config = load_config(write_config(tmp_path / "ingress.toml", topic=raw))
    publisher = KafkaPublisher(kafka_bootstrap, config.ingress)
    await set_faults(sandbox, "crm", refuse=True)

    async with running_partner() as partner, Database(migrated_database_url) as db:
        store = SubscriptionStore(db, KEYRING)
        steady = await store.add(name="steady", url=f"{partner.url}/steady", event_types=["order.*"])
        broken = await store.add(name="broken", url=f"{partner.url}/broken", event_types=["order.created"])
        partner.script[f"/broken#{ORDER}/1"] = [Answer(500)] * 3  # every attempt of the schedule, then fixed
        _, operator_token = await TokenStore(db).create("ops", "admin")
        _, partner_token = await TokenStore(db).create("broken's portal", "partner", subscription_id=broken.id)
        failed = delivery_id(broken.id, CREATED_EVENT)

        await publisher.start()
        try:
            app = create_app(config, publisher)
            async with (
                normalizer,
                delivery,
                crm,
                AdminService(kafka_bootstrap, migrated_database_url, settings=admin_settings) as admin,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress") as ingress,
            ):
                for sample in SENT:
                    channel, headers, body, _ = signed_sample(sample)
                    answer = await ingress.post(f"/webhooks/{channel}", content=body, headers=headers)
                    assert answer.status_code == 200, answer.text

                async def status_of(delivery: str) -> str | None:
                    async with db.connection() as conn:
                        cur = await conn.execute("SELECT status FROM deliveries WHERE id = %s", (delivery,))
                        row = await cur.fetchone()
                    return None if row is None else str(row["status"])

                await until(lambda: _is(status_of(failed), "failed"), 60, "the broken endpoint's delivery to fail")
                await until(
                    lambda: _has_dead_letter(admin.server.url, operator_token, names["crm"], CREATED_EVENT),
                    60,
                    "the refused order.created in the CRM's dead letters",
                )
                async with db.connection() as conn:
                    cur = await conn.execute(
                        "SELECT count(*) AS n FROM deliveries WHERE subscription_id = %s", (broken.id,)
                    )
                    broken_deliveries = (await cur.fetchone())["n"]  # type: ignore[index]
                seen: dict[str, Any] = {}

                async def counted() -> bool:  # the overview is rebuilt at most every 3 s
                    seen.update(await _get(admin.server.url, operator_token, "/api/v1/overview"))
                    return sum(c["webhooks"] for c in seen["intake"]["channels"]) == len(SENT)

                await until(counted, 30, lambda: f"the overview to count every webhook: {seen.get('intake')}")
                overview = dict(seen)

                page = await _signed_in(browser, admin.server.url, operator_token)
                await _overview(page, shots)
                await _retry_failed_delivery(page, shots, admin.server.url, failed, partner, status_of)
                await _redrive_one_dead_letter(page, shots, admin.server.url, names["crm"], sandbox)
                await _order_timeline(page, shots, admin.server.url, names["crm"])
                await page.context.close()

                portal = await _signed_in(browser, admin.server.url, partner_token)
                await _partner_sees_only_its_endpoint(
                    portal, shots, admin.server.url, delivery_id(steady.id, CREATED_EVENT), broken_deliveries
                )
                await portal.context.close()
        finally:
            await publisher.stop()

    # What the overview reported while the page showed it: every webhook once, per channel.
    channels = {c["channel"]: c["webhooks"] for c in overview["intake"]["channels"]}
    assert sum(channels.values()) == len(SENT), channels
    assert channels["shopify"] >= 3
    assert overview["latency"]["delivery"]["samples"] > 0
    assert overview["deliveries"]["attempts"] > overview["deliveries"]["succeeded"]  # the broken endpoint's 500s
    crm_queue = next(q for q in overview["dead_letters"] if q["consumer"] == names["crm"])
    assert crm_queue["not_redriven"] >= 1
    # The one redriven event's effects, once each: its customer's contact and the order.
    assert _crm_effects(sandbox) == [("PUT", "contacts"), ("PUT", "orders")]


def _crm_effects(sandbox: SandboxServers) -> list[tuple[str, str]]:
    return [(e["method"], e["path"].split("/")[1]) for e in sandbox.sandbox.effects("crm")]


async def _is(value: Any, wanted: str) -> bool:
    return (await value) == wanted


async def _get(base: str, token: str, path: str) -> Any:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.get(base + path) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def _has_dead_letter(base: str, token: str, consumer: str, event_id: str) -> bool:
    body = await _get(base, token, f"/api/v1/dead-letters/{consumer}")
    return any(d["event_id"] == event_id for d in body["dead_letters"])


async def _signed_in(browser: Browser, base: str, token: str) -> Page:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    await page.goto(base + "/")  # redirected to the dashboard, which asks for a token
    await expect(page.get_by_role("heading", name="Sign in to hookstream")).to_be_visible()
    await page.get_by_label("Token").fill("hst_not_a_real_token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown, revoked or expired")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    return page


async def _overview(page: Page, shots: Shots) -> None:
    await expect(page).to_have_url(re.compile(r"#/overview$"))
    intake = page.locator("#intake .figure")
    await expect(intake).not_to_have_text("0.0/s")  # webhooks in over the last minute
    await expect(page.locator("#latency .figure")).to_contain_text("ms")  # a p95 measured, not "—"
    await expect(page.locator("#success .figure")).to_contain_text("%")
    await expect(page.get_by_role("cell", name="shopify", exact=True)).to_be_visible()
    await expect(page.get_by_text("live ·")).to_be_visible()
    await shots.take(page, "overview")


async def _retry_failed_delivery(
    page: Page, shots: Shots, base: str, failed: str, partner: Any, status_of: Any
) -> None:
    await page.get_by_role("link", name="Deliveries").click()
    await expect(page.get_by_role("cell", name=failed)).to_be_visible()
    answered = asyncio.Event()

    async def late(route: Any) -> None:  # the filtered list answers after the operator has moved on
        await asyncio.sleep(1.5)
        await route.continue_()
        answered.set()

    await page.route("**/api/v1/deliveries?status=failed", late)
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("cell", name=failed).click()  # in the list drawn before the filter
    await expect(page.get_by_role("heading", name=f"Delivery {failed} failed")).to_be_visible()
    await asyncio.wait_for(answered.wait(), 10)
    await asyncio.sleep(0.3)
    # The late answer to the page left behind did not draw over this one.
    await expect(page.get_by_role("heading", name=f"Delivery {failed} failed")).to_be_visible()
    await page.unroute("**/api/v1/deliveries?status=failed", late)
    await expect(page.get_by_role("cell", name="500: the endpoint failed or is busy").first).to_be_visible()
    await shots.take(page, "failed-delivery")
    before = len([r for r in partner.at("/broken") if r["status"] == 200 and ORDER in r["body"].decode()])
    await page.get_by_role("button", name="Retry now").click()
    await expect(page.get_by_role("status")).to_contain_text("queued")
    await until(lambda: _is(status_of(failed), "delivered"), 30, "the retried delivery to arrive")
    after = [r for r in partner.at("/broken") if r["status"] == 200 and ORDER in r["body"].decode()]
    assert len(after) == before + 1  # delivered by the retry, once
    await page.reload()
    await expect(page.get_by_role("heading", name=f"Delivery {failed} delivered")).to_be_visible()
    await expect(page.get_by_role("cell", name="delivered: the endpoint answered 200", exact=False)).to_be_visible()


async def _redrive_one_dead_letter(page: Page, shots: Shots, base: str, crm: str, sandbox: SandboxServers) -> None:
    await page.get_by_role("link", name="Dead letters").click()
    await page.get_by_role("cell", name=crm, exact=True).click()
    await expect(page.get_by_role("heading", name=f"Dead letters of {crm}")).to_be_visible()
    letter = page.locator("details.letter", has_text=CREATED_EVENT)
    await expect(letter).to_contain_text("answered 422")
    await letter.locator("summary").click(position={"x": 200, "y": 8})  # open it: headers and payload
    await expect(letter.locator("pre").first).to_contain_text("hookstream-event-id: " + CREATED_EVENT)
    await shots.take(page, "dead-letter")
    await set_faults(sandbox, "crm")  # the CRM is fixed
    await letter.get_by_role("button", name="Redrive this one").click()
    await expect(letter.get_by_role("status")).to_contain_text("1 dead letter(s) sent back")
    await until(lambda: len(_crm_effects(sandbox)) == 2, 30, "the redriven order's CRM upserts")
    await expect(page.locator("details.letter", has_text=CREATED_EVENT)).to_contain_text("redriven")


async def _order_timeline(page: Page, shots: Shots, base: str, crm: str) -> None:
    await page.get_by_role("link", name="Orders").click()
    await page.get_by_label("Order id").fill(ORDER)
    await page.get_by_role("button", name="Look up").click()
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("received order.created from shopify")
    await expect(timeline).to_contain_text("normalizer")
    await expect(timeline).to_contain_text(crm)  # the redriven event's CRM step
    await expect(timeline).to_contain_text("500: the endpoint failed or is busy")
    await expect(timeline).to_contain_text("order.created to broken, attempt 4")  # the retry from the dashboard
    await expect(timeline).to_contain_text("delivered: the endpoint answered 200")
    await shots.take(page, "order-timeline")


async def _partner_sees_only_its_endpoint(page: Page, shots: Shots, base: str, others: str, own: int) -> None:
    await expect(page).to_have_url(re.compile(r"#/portal$"))
    await expect(page.get_by_role("heading", name="broken")).to_be_visible()
    await expect(page.get_by_role("link", name="Overview")).to_have_count(0)
    await expect(page.get_by_text("500: the endpoint failed or is busy").first).to_be_visible()
    await page.get_by_role("button", name="Send test event").click()  # a signed webhook.test, now
    await expect(page.get_by_role("status")).to_contain_text("delivered: the endpoint answered 200")
    await shots.take(page, "partner-portal")
    rows = page.locator("section", has_text="Recent deliveries").locator("tbody tr")
    await expect(rows).to_have_count(own)  # its own deliveries only
    await page.goto(f"{base}/ui/#/deliveries/{others}")  # another endpoint's delivery: not found, no data
    await expect(page.get_by_role("alert")).to_contain_text("no delivery with that id")
    await page.goto(f"{base}/ui/#/overview")
    await expect(page).to_have_url(re.compile(r"#/portal$"))
    body = json.dumps(await page.evaluate("() => document.body.innerText"))
    assert "steady" not in body

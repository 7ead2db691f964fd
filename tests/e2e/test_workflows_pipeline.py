"""Signed webhooks in at ingress, through the normalizer, to every workflow and the external systems
they talk to (the sandbox, failing a share of calls): each effect once, one chain per payment."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx
from hookstream import registry
from hookstream.consumer import ConsumerSettings
from hookstream.db import Database, apply_migrations
from hookstream.store.invoices import InvoiceStore
from hookstream.store.orders import OrderRefs
from hookstream.store.risk import RiskStore, VerdictTopic
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_services.fulfillment.service import FulfillmentService, FulfillmentSettings
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hookstream_services.ingress.publisher import KafkaPublisher
from hookstream_services.inventory.service import InventoryService, InventorySettings
from hookstream_services.normalizer.service import NormalizerService, NormalizerSettings
from hookstream_services.notifications.service import NotificationService, NotificationSettings
from hookstream_services.risk.service import RiskService, RiskSettings
from hookstream_tools.sandbox import Faults, SandboxServers

from tests.signing import signed_sample, write_config
from tests.waiting import until

SENT = [
    "shopify_orders_create",
    "woocommerce_order_created",
    "custom_order_created",
    "shopify_orders_paid",
    "stripe_payment_intent_succeeded",  # the same payment, seen by Stripe: no second chain
    "shopify_orders_fulfilled",
]
SHOPIFY = "shopify:5612345678901"


async def test_webhooks_reach_every_workflow_and_each_effect_happens_once(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path, sandbox: SandboxServers
) -> None:
    await apply_migrations(
        migrated_database_url, registry.get("fulfillment").load_migrations(), component="fulfillment"
    )
    raw, canonical = f"{unique_name}.raw", f"{unique_name}.canonical"
    world = sandbox.sandbox
    for system in ("crm", "erp", "warehouse", "sms"):
        world.systems[system].faults = Faults(fail_rate=0.2, timeout_rate=0.05, hang_ms=700)
    world.smtp_faults = Faults(fail_rate=0.2)
    common: dict[str, Any] = {
        "retry_delays": ["200ms"] * 12,
        "retry_jitter": 0,
        "commit_interval_ms": 200,
        "input_topic": canonical,
    }
    mail = {"smtp_host": "127.0.0.1", "smtp_port": sandbox.smtp_port, "smtp_timeout_ms": 500}
    risk = RiskSettings(
        url=sandbox.url("risk"), service_name=f"risk-{unique_name}", verdict_topic=f"{unique_name}.risk", **common
    )
    services = [
        NormalizerService(
            kafka_bootstrap,
            migrated_database_url,
            settings=NormalizerSettings(
                service_name=f"normalizer-{unique_name}", raw_topic=raw, canonical_topic=canonical
            ),
            consumer=ConsumerSettings(commit_interval_ms=200),
        ),
        CrmService(
            kafka_bootstrap,
            migrated_database_url,
            settings=CrmSettings(url=sandbox.url("crm"), timeout_ms=400, service_name=f"crm-{unique_name}", **common),
        ),
        InventoryService(
            kafka_bootstrap,
            migrated_database_url,
            settings=InventorySettings(
                url=sandbox.url("erp"), timeout_ms=400, service_name=f"inventory-{unique_name}", **common
            ),
        ),
        NotificationService(
            kafka_bootstrap,
            migrated_database_url,
            settings=NotificationSettings(
                sender="Shop <orders@shop.example>",
                sms_url=sandbox.url("sms"),
                sms_timeout_ms=400,
                service_name=f"notifications-{unique_name}",
                **mail,
                **common,
            ),
        ),
        RiskService(kafka_bootstrap, migrated_database_url, settings=risk),
        FulfillmentService(
            kafka_bootstrap,
            migrated_database_url,
            settings=FulfillmentSettings(
                url=sandbox.url("warehouse"),
                timeout_ms=400,
                sender="Shop <orders@shop.example>",
                service_name=f"fulfillment-{unique_name}",
                risk_topic=risk.verdict_topic,
                risk_service=risk.service_name,
                fulfillment_topic=f"{unique_name}.fulfillment",
                **mail,
                **common,
            ),
        ),
    ]
    config = load_config(write_config(tmp_path / "ingress.toml", topic=raw))
    publisher = KafkaPublisher(kafka_bootstrap, config.ingress)
    await publisher.start()
    try:
        async with AsyncExitStack() as stack:
            for service in services:
                await stack.enter_async_context(service)
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=create_app(config, publisher)), base_url="http://in"
                )
            )
            for sample in SENT:
                channel, headers, body, _ = signed_sample(sample)
                answer = await client.post(f"/webhooks/{channel}", content=body, headers=headers)
                assert answer.status_code == 200, answer.text

            def emails_to(address: str) -> list[str]:
                return [e["subject"] for e in world.emails if e["rcpt_to"] == [address]]

            def done() -> bool:
                paths = {c.path for c in world.calls if 200 <= c.status < 300}
                return (
                    f"/orders/{SHOPIFY}" in paths  # CRM and warehouse notice
                    and f"/reservations/{SHOPIFY}" in paths
                    and "/fulfillments" in paths
                    and len(emails_to("ana.silva@example.com")) >= 3  # confirmation, payment, shipping
                    and len(world.effects("sms")) >= 1
                    and any(c.method == "PATCH" and c.body.get("status") == "fulfilled" for c in world.calls)
                )

            await until(done, timeout_s=90, what=lambda: f"every workflow's effects, have {world.summary()}")
            await asyncio.sleep(2.0)  # anything more would be a repeated effect
            async with Database(migrated_database_url) as db:
                invoices = await InvoiceStore(db).for_order(SHOPIFY)
                refs = await OrderRefs(db).all(SHOPIFY)
                assessed: list[Any] = []

                async def all_assessed() -> bool:
                    store = RiskStore(db, VerdictTopic(risk.service_name))
                    orders = (SHOPIFY, "woocommerce:727", "b2b-portal:B2B-2026-000317")
                    assessed[:] = [await store.get(o) for o in orders]
                    return all(assessed)

                await until(all_assessed, timeout_s=30, what="a risk assessment of every order")
    finally:
        await publisher.stop()

    applied = Counter(c.idempotency_key for c in world.calls if 200 <= c.status < 300 and not c.replayed)
    assert applied.most_common(1)[0][1] == 1, "an effect happened twice"
    assert any(c.fault for c in world.calls)  # the systems did fail on the way
    # One payment, one chain: Shopify's orders/paid and Stripe's payment_intent.succeeded.
    assert [i.kind for i in invoices] == ["invoice"]
    assert [c["path"] for c in world.effects("warehouse") if c["path"] == "/fulfillments"] == ["/fulfillments"]
    subjects = emails_to("ana.silva@example.com")
    assert sorted(set(subjects)) == sorted(
        {
            "Thank you for your order 5612345678901",
            f"Payment received for your order 5612345678901 (invoice {invoices[0].number})",
            "Your order 5612345678901 is on its way",
        }
    )
    sms = world.effects("sms")
    assert [s["body"]["to"] for s in sms] == ["+351 912 345 678"]
    assert "https://tracking.example.com/RR123456789PT" in sms[0]["body"]["text"]
    reservation = world.systems["erp"].resources[f"/reservations/{SHOPIFY}"]
    assert reservation["status"] == "taken"
    assert set(refs) == {"crm", "erp", "warehouse"}
    # Every new order was assessed; the B2B order (4,820.00, a first order) waits for an operator.
    assert [(a.order_id, a.verdict, a.score) if a else None for a in assessed] == [
        (SHOPIFY, "cleared", 0),
        ("woocommerce:727", "cleared", 0),
        ("b2b-portal:B2B-2026-000317", "held", 65),
    ]

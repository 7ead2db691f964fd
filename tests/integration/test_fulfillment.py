"""The paid chain (invoice → risk → warehouse → payment email) with the risk service beside it,
against the real broker and database and the sandbox's warehouse, risk platform and SMTP server."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pypdf
from hookstream.db import Database
from hookstream.store.invoices import InvoiceStore
from hookstream.store.orders import OrderRefs
from hookstream.store.risk import RiskStore, VerdictTopic
from hookstream_services.fulfillment.service import FulfillmentService, FulfillmentSettings
from hookstream_services.risk.service import RiskService, RiskSettings
from hookstream_tools.sandbox import Faults, Sandbox, SandboxServers

from tests.integration.test_delivery import canonical
from tests.integration.test_risk import order
from tests.kafka_helpers import read_topic
from tests.waiting import until


def paid(created: dict[str, Any], event_id: str, *, with_lines: bool = True) -> dict[str, Any]:
    event = canonical(event_id, created["order_id"], 2, "order.paid")
    for k in ("currency", "amounts", "customer", "shipping_address", "billing_address"):
        event[k] = created[k]
    event["items"] = created["items"] if with_lines else []
    return event


def with_items(event: dict[str, Any]) -> dict[str, Any]:
    event["items"] = [
        {"sku": "MUG-1", "title": "Mug Ölmühle", "quantity": 2, "unit_price": "12.50"},
        {"sku": "TEA-9", "title": "Tea \u2013 green", "quantity": 1, "unit_price": "38.71"},
    ]
    return event


async def test_the_paid_chain_runs_once_per_order_waits_for_risk_and_resumes_after_release(
    publish: Any, kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path
) -> None:
    from hookstream import registry
    from hookstream.db import apply_migrations

    spec = registry.get("fulfillment")  # what `hookstream run fulfillment` migrates first
    await apply_migrations(migrated_database_url, spec.load_migrations(), component="fulfillment")
    async with SandboxServers(Sandbox(seed=4)) as sandbox:
        common = {"timeout_ms": 400, "retry_delays": ["200ms"] * 12, "retry_jitter": 0, "commit_interval_ms": 200}
        risk = RiskSettings(
            url=sandbox.url("risk"),
            service_name=f"risk-{unique_name}",
            input_topic=publish.topic,
            verdict_topic=f"{unique_name}.risk",
            **common,
        )
        settings = FulfillmentSettings(
            url=sandbox.url("warehouse"),
            smtp_host="127.0.0.1",
            smtp_port=sandbox.smtp_port,
            smtp_timeout_ms=500,
            sender="Shop <orders@shop.example>",
            seller_name="Acme Mugs Ltd",
            priority_over="500",
            service_name=f"fulfillment-{unique_name}",
            input_topic=publish.topic,
            risk_topic=risk.verdict_topic,
            risk_service=risk.service_name,
            fulfillment_topic=f"{unique_name}.fulfillment",
            **common,
        )
        # The first warehouse write surely times out (the assertion below needs one), later ones by chance.
        sandbox.sandbox.systems["warehouse"].faults = Faults(
            fail_rate=0.3, timeout_rate=0.1, hang_ms=700, timeout_next=1
        )
        a = with_items(order(1, "a@example.com", "63.71"))  # low risk
        b = with_items(order(2, "b@example.com", "1500.00"))  # held (65), released by an operator
        c = with_items(order(3, "c@example.com", "63.71"))  # paid twice (Shopify, then Stripe)
        d = with_items(order(4, "d@example.com", "2000.00"))  # held, cancelled by an operator
        async with (
            RiskService(kafka_bootstrap, migrated_database_url, settings=risk),
            FulfillmentService(kafka_bootstrap, migrated_database_url, settings=settings),
        ):
            await publish(a, b, c, d)
            await publish(paid(a, "a-paid"), paid(b, "b-paid"), paid(c, "c-paid"), paid(d, "d-paid"))
            await publish(paid(c, "c-stripe", with_lines=False))  # a second payment signal: no second chain
            warehouse = sandbox.sandbox

            def requested() -> list[dict[str, Any]]:
                return [e for e in warehouse.effects("warehouse") if e["path"] == "/fulfillments"]

            await until(lambda: len(requested()) == 2, timeout_s=60, what=lambda: f"a and c requested: {requested()}")
            await until(lambda: len(warehouse.emails) == 2, timeout_s=30, what="a's and c's payment emails")
            await asyncio.sleep(1.0)
            assert sorted(e["body"]["order_id"] for e in requested()) == ["shopify:1", "shopify:3"]

            async with Database(migrated_database_url) as db:
                store = RiskStore(db, VerdictTopic(risk.service_name, risk.verdict_topic))
                assert sorted(h.order_id for h in await store.held()) == ["shopify:2", "shopify:4"]
                await store.decide("shopify:2", "released", "ops@shop")
                await store.decide("shopify:4", "cancelled", "ops@shop")
            await until(lambda: len(requested()) == 3, timeout_s=60, what="b requested after its release")
            await until(lambda: len(warehouse.emails) == 3, timeout_s=30, what="b's payment email")

            async def credited(order_id: str, count: int) -> bool:
                async with Database(migrated_database_url) as db:
                    return len(await InvoiceStore(db).for_order(order_id)) == count

            # d was invoiced before it was held: its cancellation balances the invoice with a credit note.
            await until(lambda: credited("shopify:4", 2), timeout_s=30, what="d's credit note")
            refund = canonical("a-refund", "shopify:1", 3, "order.refunded")
            refund["amounts"] = {**refund["amounts"], "paid": "20.00"}
            await publish(refund, refund)  # the second is a redelivery: still one credit note

            await until(lambda: credited("shopify:1", 2), timeout_s=30, what="a's credit note")
            await asyncio.sleep(1.5)  # anything more would be a repeated effect

        # Each (event, step) once at the warehouse despite failures and timeouts.
        applied = Counter(
            c.idempotency_key
            for c in warehouse.calls
            if c.system == "warehouse" and 200 <= c.status < 300 and not c.replayed
        )
        assert applied.most_common(1)[0][1] == 1
        assert any(c.fault == "timeout" for c in warehouse.calls if c.system == "warehouse")
        fulfillments = {e["body"]["order_id"]: e["body"] for e in requested()}
        assert sorted(fulfillments) == ["shopify:1", "shopify:2", "shopify:3"]
        assert fulfillments["shopify:2"]["priority"] is True
        assert fulfillments["shopify:1"]["priority"] is False
        assert fulfillments["shopify:1"]["lines"] == [{"sku": "MUG-1", "quantity": 2}, {"sku": "TEA-9", "quantity": 1}]
        # The warehouse heard of every new order too, each once.
        notices = sorted(e["path"] for e in warehouse.effects("warehouse") if e["path"].startswith("/orders/"))
        assert notices == [f"/orders/shopify:{n}" for n in range(1, 5)]

        emails = {e["rcpt_to"][0]: e for e in warehouse.emails}
        assert sorted(emails) == ["a@example.com", "b@example.com", "c@example.com"]
        async with Database(migrated_database_url) as db:
            invoices = InvoiceStore(db)
            numbers = {}
            for n in range(1, 5):
                issued = [i for i in await invoices.for_order(f"shopify:{n}") if i.kind == "invoice"]
                assert len(issued) == 1  # c was paid twice: one invoice
                numbers[n] = issued[0].number
            credit = [i for i in await invoices.for_order("shopify:1") if i.kind == "credit_note"]
            assert [(c.number, c.total) for c in credit] == [("CN-SHOPIFY-000002", "20.00")]
            credit_text = pypdf.PdfReader(io.BytesIO(credit[0].pdf)).pages[0].extract_text()
            assert "Credit note CN-SHOPIFY-000002" in credit_text
            assert "-20.00 EUR" in credit_text
            voided = [i for i in await invoices.for_order("shopify:4") if i.kind == "credit_note"]
            assert [(c.number, c.total) for c in voided] == [("CN-SHOPIFY-000001", "2000.00")]
            # Numbered without gaps per shop, in the order the invoices were issued.
            assert sorted(numbers.values()) == [f"INV-SHOPIFY-{i:06d}" for i in range(1, 5)]
            invoice_a = await invoices.get(numbers[1])
            refs = await OrderRefs(db).all("shopify:1")
        assert invoice_a is not None
        text = pypdf.PdfReader(io.BytesIO(invoice_a.pdf)).pages[0].extract_text()
        assert f"Invoice {numbers[1]}" in text
        assert "Acme Mugs Ltd" in text
        assert "Mug Ölmühle" in text  # Latin-1 kept
        assert "Tea - green" in text  # the en dash folded for the core font
        assert "25.00 EUR" in text  # 2 x 12.50
        assert "63.71 EUR" in text
        mail_a = emails["a@example.com"]
        assert mail_a["subject"] == f"Payment received for your order 1 (invoice {numbers[1]})"
        assert mail_a["attachments"] == [
            {"filename": f"{numbers[1]}.pdf", "content_type": "application/pdf", "size": len(invoice_a.pdf)}
        ]
        assert "with priority" in emails["b@example.com"]["text"]
        assert (
            refs["warehouse"]
            == sandbox.sandbox.systems["warehouse"].resources[f"/fulfillments/{refs['warehouse']}"]["id"]
        )

    # The chain's results are events others can follow, each once.
    chain_events = await asyncio.to_thread(read_topic, kafka_bootstrap, settings.fulfillment_topic, expect=14)
    assert len(chain_events) == 14
    from hookstream.avro import SchemaStore

    serde = SchemaStore.bundled().serde("orders.fulfillment.v1")
    kinds = Counter(
        (v["order_id"], v["kind"])
        for v in (serde.decode(m.value() or b"", list(m.headers() or [])) for m in chain_events)
    )
    assert kinds == Counter(
        {
            ("shopify:1", "invoice_generated"): 1,
            ("shopify:1", "fulfillment_requested"): 1,
            ("shopify:1", "chain_completed"): 1,
            ("shopify:1", "credit_note_generated"): 1,
            ("shopify:2", "invoice_generated"): 1,
            ("shopify:2", "waiting_for_risk"): 1,
            ("shopify:2", "fulfillment_requested"): 1,
            ("shopify:2", "chain_completed"): 1,
            ("shopify:3", "invoice_generated"): 1,
            ("shopify:3", "fulfillment_requested"): 1,
            ("shopify:3", "chain_completed"): 1,
            ("shopify:4", "invoice_generated"): 1,
            ("shopify:4", "waiting_for_risk"): 1,
            ("shopify:4", "credit_note_generated"): 1,
        }
    )

    # The documents are retrievable from the CLI.
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": migrated_database_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hookstream", "invoices", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    listed = await asyncio.to_thread(cli, "list", "shopify:1")
    assert listed.returncode == 0, listed.stderr
    assert numbers[1] in listed.stdout
    assert "CN-SHOPIFY-000002  credit_note  20.00 EUR" in listed.stdout
    target = tmp_path / "a.pdf"
    got = await asyncio.to_thread(cli, "get", numbers[1], "--out", str(target))
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == invoice_a.pdf
    missing = await asyncio.to_thread(cli, "get", "INV-NOPE-1")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: no invoice or credit note numbered INV-NOPE-1: `hookstream invoices list ORDER` shows them"
    )

"""Workflow services together: inventory against the sandbox's ERP, and kill -9 of all five workflow
processes mid-run (real broker, database, and the sandbox as a process of its own)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from hookstream.db import Database
from hookstream.store.invoices import InvoiceStore
from hookstream.store.orders import OrderRefs
from hookstream_services.inventory.service import InventoryService, InventorySettings
from hookstream_tools.sandbox import Faults, Sandbox, SandboxServers

from tests.integration.test_delivery import canonical
from tests.sandbox_process import SandboxProcess, get_json, set_faults
from tests.waiting import until

WORKFLOWS = ("crm", "inventory", "notifications", "risk", "fulfillment")


def with_lines(event: dict[str, Any], *skus: str) -> dict[str, Any]:
    event["items"] = [{"sku": sku, "title": sku, "quantity": 1 + n, "unit_price": "5.00"} for n, sku in enumerate(skus)]
    return event


async def test_inventory_reserves_releases_and_takes_stock_once(
    publish: Any, kafka_bootstrap: str, migrated_database_url: str, unique_name: str
) -> None:
    settings = InventorySettings(
        timeout_ms=300,
        retry_delays=["200ms"] * 10,
        retry_jitter=0,
        commit_interval_ms=200,
        service_name=f"inventory-{unique_name}",
        input_topic=publish.topic,
    )
    async with SandboxServers(Sandbox(seed=5)) as sandbox:
        sandbox.sandbox.systems["erp"].faults = Faults(fail_rate=0.3, timeout_rate=0.1, hang_ms=600)
        settings = settings.model_copy(update={"url": sandbox.url("erp")})
        async with InventoryService(kafka_bootstrap, migrated_database_url, settings=settings) as service:
            await publish(
                with_lines(canonical("a1", "shopify:1", 1, "order.created"), "MUG", "CUP"),
                canonical("a2", "shopify:1", 2, "order.cancelled"),
                with_lines(canonical("b1", "shopify:2", 1, "order.created"), "MUG"),
                canonical("b2", "shopify:2", 2, "order.paid"),
                canonical("b3", "shopify:2", 3, "order.shipped"),
                canonical("c1", "shopify:3", 1, "order.created"),  # no stocked lines: nothing to reserve
                canonical("d1", "shopify:4", 2, "order.cancelled"),  # never reserved: nothing to release
            )
            await until(lambda: len(sandbox.sandbox.effects("erp")) >= 4, timeout_s=60, what="4 ERP effects")
            await asyncio.sleep(1.0)
            refs = OrderRefs(service.db)
            erp_ref = await refs.get("shopify:2", "erp")
        effects = [(c["method"], c["path"]) for c in sandbox.sandbox.effects("erp")]
        assert sorted(effects) == sorted(
            [
                ("PUT", "/reservations/shopify:1"),
                ("DELETE", "/reservations/shopify:1"),
                ("PUT", "/reservations/shopify:2"),
                ("PATCH", "/reservations/shopify:2"),
            ]
        )
        assert effects.index(("PUT", "/reservations/shopify:1")) < effects.index(("DELETE", "/reservations/shopify:1"))
        resources = sandbox.sandbox.systems["erp"].resources
        assert "/reservations/shopify:1" not in resources
        assert resources["/reservations/shopify:2"]["status"] == "taken"
        assert resources["/reservations/shopify:2"]["lines"] == [{"sku": "MUG", "quantity": 1}]
        assert erp_ref == resources["/reservations/shopify:2"]["id"]
        # The release of the never-reserved order was answered 404 and counted as done, not dead-lettered.
        assert [c.status for c in sandbox.sandbox.calls if c.path == "/reservations/shopify:4"][-1] == 404


async def test_kill_9_of_every_workflow_mid_run_loses_nothing_and_repeats_no_effect(
    publish: Any, sandbox_process: SandboxProcess, kafka_bootstrap: str, migrated_database_url: str, unique_name: str
) -> None:
    url, smtp_port = sandbox_process.url, sandbox_process.smtp_port
    for system in ("crm", "erp", "warehouse", "smtp"):
        await set_faults(url, system, fail_rate=0.2, slow_ms=20)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_HEALTH_PORT": "0",
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        "HOOKSTREAM_CONSUMER_COMMIT_INTERVAL_MS": "200",
        "HOOKSTREAM_CRM_URL": f"{url}/crm",
        "HOOKSTREAM_INVENTORY_URL": f"{url}/erp",
        "HOOKSTREAM_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
        "HOOKSTREAM_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
        "HOOKSTREAM_NOTIFICATIONS_SENDER": "Shop <orders@shop.example>",
        "HOOKSTREAM_RISK_URL": f"{url}/risk",
        "HOOKSTREAM_RISK_VERDICT_TOPIC": f"{unique_name}.risk",
        "HOOKSTREAM_FULFILLMENT_URL": f"{url}/warehouse",
        "HOOKSTREAM_FULFILLMENT_SMTP_HOST": "127.0.0.1",
        "HOOKSTREAM_FULFILLMENT_SMTP_PORT": str(smtp_port),
        "HOOKSTREAM_FULFILLMENT_SENDER": "Shop <orders@shop.example>",
        "HOOKSTREAM_FULFILLMENT_RISK_TOPIC": f"{unique_name}.risk",
        "HOOKSTREAM_FULFILLMENT_RISK_SERVICE": f"risk-{unique_name}",
        "HOOKSTREAM_FULFILLMENT_FULFILLMENT_TOPIC": f"{unique_name}.fulfillment",
    }
    for service in WORKFLOWS:
        prefix = f"HOOKSTREAM_{service.upper()}_"
        env |= {
            f"{prefix}SERVICE_NAME": f"{service}-{unique_name}",
            f"{prefix}INPUT_TOPIC": publish.topic,
            f"{prefix}RETRY_DELAYS": ",".join(["200ms"] * 12),
            f"{prefix}RETRY_JITTER": "0",
            f"{prefix}COMMIT_INTERVAL_MS": "200",
        }
    orders = 60
    events = []
    for n in range(orders):
        created = with_lines(canonical(f"o{n}-1", f"shopify:{n}", 1, "order.created"), "MUG")
        created["customer"] = {"id": None, "email": f"b{n}@example.com", "name": "Ada", "company": None}
        paid = canonical(f"o{n}-2", f"shopify:{n}", 2, "order.paid")
        paid |= {k: created[k] for k in ("customer", "items")}
        events += [created, paid]
    await publish(*events)
    # Per order: crm contact + order + status, inventory reserve, the warehouse's notice and request,
    # the confirmation and the payment email (risk clears every order: no call of its own).
    expected = {"crm": orders * 3, "erp": orders, "warehouse": orders * 2, "email": orders * 2}

    def start(service: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "hookstream", "run", service]
        return subprocess.Popen(command, env=env, stderr=subprocess.PIPE)

    def effects() -> dict[str, int]:
        summary = get_json(f"{url}/_sandbox/summary")
        emails = get_json(f"{url}/_sandbox/emails")
        return {
            "crm": summary["crm"]["effects"],
            "erp": summary["erp"]["effects"],
            "warehouse": summary["warehouse"]["effects"],
            "email": len({e["message_id"] for e in emails}),
        }

    first = {s: start(s) for s in WORKFLOWS}
    try:
        deadline = time.monotonic() + 120
        while True:
            done = await asyncio.to_thread(effects)
            if all(done[k] >= expected[k] // 5 for k in expected):
                break
            for proc in first.values():
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, f"only {done} of {expected} after 120 s"
            await asyncio.sleep(0.1)
        killed_at = time.time()
        for proc in first.values():
            proc.send_signal(signal.SIGKILL)
        for proc in first.values():
            proc.wait(10)
    finally:
        for proc in first.values():
            if proc.poll() is None:
                proc.kill()
    at_kill = await asyncio.to_thread(effects)
    assert any(at_kill[k] < expected[k] for k in expected), f"all done before the kill: nothing was tested {at_kill}"

    second = {s: start(s) for s in WORKFLOWS}
    try:
        await until(
            lambda: all(v >= expected[k] for k, v in effects().items()),
            timeout_s=150,
            what=lambda: f"{expected}, have {effects()}",
        )
        await asyncio.sleep(1.5)  # anything more would be a repeated effect
    finally:
        codes = {}
        for service, proc in second.items():
            proc.send_signal(signal.SIGTERM)
            try:
                codes[service] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[service] = proc.wait()
    assert codes == dict.fromkeys(WORKFLOWS, 0)
    calls = get_json(f"{url}/_sandbox/calls")
    applied = Counter(c["idempotency_key"] for c in calls if 200 <= c["status"] < 300 and not c["replayed"])
    assert applied.most_common(1)[0][1] == 1, "an effect happened twice"
    assert await asyncio.to_thread(effects) == expected
    emails = get_json(f"{url}/_sandbox/emails")
    # SMTP has no idempotency: a process killed between the server's 250 and the step's record sends
    # the message again, with the same Message-ID, which a receiver drops. Only messages that were
    # in flight at the kill may be sent twice, and each at most twice; anything else is a bug.
    first_seen: dict[str, float] = {}
    for e in emails:
        first_seen.setdefault(e["message_id"], e["at"])
    repeated = Counter(e["message_id"] for e in emails) - Counter(set(first_seen))
    assert all(n == 1 for n in repeated.values()), repeated
    assert all(first_seen[m] > killed_at - 1.0 for m in repeated), "a message delivered well before the kill was resent"
    async with Database(migrated_database_url) as db:
        refs = OrderRefs(db)
        for n in range(orders):
            assert set(await refs.all(f"shopify:{n}")) == {"crm", "erp", "warehouse"}
        # One invoice per order, numbered without gaps across the kill.
        numbers = sorted([i.number for n in range(orders) for i in await InvoiceStore(db).for_order(f"shopify:{n}")])
        assert numbers == [f"INV-SHOPIFY-{i:06d}" for i in range(1, orders + 1)]

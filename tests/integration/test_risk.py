"""Risk against the real broker and database and the sandbox's risk platform; operators' decisions by the CLI."""

from __future__ import annotations

import asyncio
import getpass
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from hookstream.avro import SchemaStore
from hookstream.db import Database
from hookstream.store.audit import AuditLog
from hookstream.store.risk import RiskStore, VerdictTopic
from hookstream_services.risk.service import RiskService, RiskSettings
from hookstream_tools.sandbox import Sandbox, SandboxServers

from tests.integration.test_delivery import canonical
from tests.kafka_helpers import read_topic

VERDICTS = SchemaStore.bundled().serde("orders.risk.v1")


def order(
    n: int, email: str, total: str, *, billing: str = "DE", shipping: str = "DE", hour: int = 10
) -> dict[str, Any]:
    event = canonical(f"r{n}", f"shopify:{n}", 1, "order.created")
    event["occurred_at"] = datetime(2026, 11, 20, hour, n, tzinfo=UTC)
    event["amounts"] = {**event["amounts"], "total": total}
    event["customer"] = {"id": None, "email": email, "name": "Ada", "company": None}
    address = dict.fromkeys(("name", "line1", "line2", "city", "region", "postal_code", "phone"))
    event["billing_address"] = {**address, "country": billing}
    event["shipping_address"] = {**address, "country": shipping}
    return event


def _verdicts(bootstrap: str, topic: str, expect: int) -> dict[str, list[tuple[str, int]]]:
    by_order: dict[str, list[tuple[str, int]]] = {}
    for m in read_topic(bootstrap, topic, expect=expect, timeout_s=30):
        v = VERDICTS.decode(m.value() or b"", list(m.headers() or []))
        by_order.setdefault(v["order_id"], []).append((v["verdict"], v["score"]))
    return by_order


async def test_risky_orders_are_held_flagged_once_and_released_or_cancelled_by_an_operator(
    publish: Any, kafka_bootstrap: str, migrated_database_url: str, unique_name: str
) -> None:
    async with SandboxServers(Sandbox(seed=2)) as sandbox:
        settings = RiskSettings(
            url=sandbox.url("risk"),
            timeout_ms=500,
            retry_delays=["200ms"] * 5,
            retry_jitter=0,
            commit_interval_ms=200,
            service_name=f"risk-{unique_name}",
            input_topic=publish.topic,
            verdict_topic=f"{unique_name}.risk",
        )
        async with RiskService(kafka_bootstrap, migrated_database_url, settings=settings):
            await publish(
                order(1, "low@example.com", "50.00"),  # nothing: cleared
                order(2, "big@example.com", "1500.00"),  # amount 40 + first-time high total 25: held
                order(3, "abroad@example.com", "400.00", billing="DE", shipping="FR"),  # country 30 + first 25
                order(4, "fast@example.com", "20.00", hour=9),
                order(5, "fast@example.com", "20.00", hour=10),
            )
            # One at a time, so each sees the ones before it (a burst is counted whichever comes last).
            await asyncio.to_thread(_verdicts, kafka_bootstrap, settings.verdict_topic, 5)
            await publish(order(6, "fast@example.com", "20.00", billing="DE", shipping="US", hour=11))  # 30 + 30
            await asyncio.to_thread(_verdicts, kafka_bootstrap, settings.verdict_topic, 6)
            await publish(order(7, "fast@example.com", "20.00", hour=12))  # velocity 30 only
            verdicts = await asyncio.to_thread(_verdicts, kafka_bootstrap, settings.verdict_topic, 7)
            assert verdicts == {
                "shopify:1": [("cleared", 0)],
                "shopify:2": [("held", 65)],
                "shopify:3": [("cleared", 55)],
                "shopify:4": [("cleared", 0)],
                "shopify:5": [("cleared", 0)],
                "shopify:6": [("held", 60)],
                "shopify:7": [("cleared", 30)],
            }
            flags = sandbox.sandbox.effects("risk")
            assert sorted(f["body"]["order_id"] for f in flags) == ["shopify:2", "shopify:6"]
            reasons = next(f["body"]["reasons"] for f in flags if f["body"]["order_id"] == "shopify:6")
            assert reasons == [
                "billing country DE differs from shipping country US",
                "3 orders from this email within 24 h",
            ]
            # A redelivered order.created is neither scored nor flagged again.
            await publish(order(2, "big@example.com", "1500.00"))

            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "DATABASE_URL": migrated_database_url,
            }
            where = ["--service", settings.service_name, "--topic", settings.verdict_topic]

            def cli(*args: str) -> subprocess.CompletedProcess[str]:
                command = [sys.executable, "-m", "hookstream", "orders", *args]
                return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

            held = await asyncio.to_thread(cli, "held", *where)
            assert held.returncode == 0, held.stderr
            assert "shopify:2  score 65" in held.stdout
            assert "- total 1500.00 EUR is at or over 1000" in held.stdout
            released = await asyncio.to_thread(cli, "release", "shopify:2", "--by", "ops@shop", *where)
            assert released.returncode == 0, released.stderr
            assert "shopify:2 released by ops@shop" in released.stdout
            cancelled = await asyncio.to_thread(cli, "cancel", "shopify:6", *where)
            assert cancelled.returncode == 0, cancelled.stderr
            again = await asyncio.to_thread(cli, "release", "shopify:2", *where)
            assert again.returncode == 1
            assert again.stderr.strip() == "error: order shopify:2 is not held: its verdict is released by ops@shop"
            unknown = await asyncio.to_thread(cli, "cancel", "shopify:99", *where)
            assert unknown.returncode == 1
            assert "order shopify:99 has no risk assessment" in unknown.stderr

            async with Database(migrated_database_url) as db:  # the CLI's decisions are audited
                decided = [(e.actor, e.action, e.target) for e in reversed(await AuditLog(db).recent())]
            assert decided == [
                (f"cli:{getpass.getuser()}", "order.risk_released", "shopify:2"),
                (f"cli:{getpass.getuser()}", "order.risk_cancelled", "shopify:6"),
            ]
            verdicts = await asyncio.to_thread(_verdicts, kafka_bootstrap, settings.verdict_topic, 9)
            assert verdicts["shopify:2"] == [("held", 65), ("released", 65)]
            assert verdicts["shopify:6"] == [("held", 60), ("cancelled", 60)]
            assert sum(len(v) for v in verdicts.values()) == 9
        assert len(sandbox.sandbox.effects("risk")) == 2
        async with Database(migrated_database_url) as db:
            store = RiskStore(db, VerdictTopic(settings.service_name, settings.verdict_topic))
            assert await store.held() == []
            decided = await store.get("shopify:2")
            assert decided is not None
            assert (decided.verdict, decided.decided_by) == ("released", "ops@shop")


async def test_a_burst_of_orders_from_one_email_is_assessed_one_at_a_time(migrated_database_url: str) -> None:
    from hookstream.consumer.steps import Steps
    from hookstream.settings import DatabaseSettings
    from hookstream_services.risk.handler import Assess
    from hookstream_services.risk.rules import Rules

    async with Database(migrated_database_url, DatabaseSettings(pool_min_size=8)) as db:
        # Warm the pool, so the burst's transactions really run side by side.
        async def warm() -> None:
            async with db.connection() as conn:
                await conn.execute("SELECT pg_sleep(0.05)")

        await asyncio.gather(*(warm() for _ in range(8)))
        assess = Assess(db, None, Steps(db, "risk-burst"), VERDICTS, Rules(), VerdictTopic("risk-burst", "x"))  # type: ignore[arg-type]
        burst = [order(20 + i, "burst2@example.com", "20.00", hour=8) for i in range(6)]
        results = await asyncio.gather(*(assess._assess(e) for e in burst))
    # Each sees the ones assessed before it: 1, 2, 3 ... 6 orders, velocity from the third on.
    assert sorted(r.score for r in results) == [0, 0, 30, 30, 30, 30]

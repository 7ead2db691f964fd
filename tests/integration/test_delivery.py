"""Delivery against the real broker and database and a partner endpoint started by the test."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hookstream.consumer.dlq import list_dead_letters
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream.kafka import Producer
from hookstream.store.circuits import CircuitLog
from hookstream.store.deliveries import ATTEMPTED, DELIVERY, delivery_id, resend
from hookstream.store.subscriptions import SubscriptionStore
from hookstream_schemas.topics import ALERTS
from hookstream_services.delivery.service import DeliveryService, DeliverySettings
from standardwebhooks import Webhook

from tests.kafka_helpers import read_topic
from tests.keys import KEYRING
from tests.partner import Partner, running_partner
from tests.waiting import until


@pytest.fixture
async def partner() -> AsyncIterator[Partner]:
    async with running_partner() as p:
        yield p


def canonical(event_id: str, order_id: str, sequence: int, kind: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "order_id": order_id,
        "sequence": sequence,
        "channel": "shopify",
        "type": kind,
        "status": kind.split(".")[1],
        "occurred_at": datetime(2026, 11, 20, 10, 0, sequence, tzinfo=UTC),
        "received_at": datetime(2026, 11, 20, 10, 0, sequence, tzinfo=UTC),
        "currency": "EUR",
        "amounts": {"total": "63.71", "subtotal": None, "tax": None, "shipping": None, "discount": None, "paid": None},
        "customer": None,
        "items": [],
        "shipping_address": None,
        "billing_address": None,
        "tracking": [],
        "payment_reference": None,
    }


@pytest.fixture
async def stack(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, publish: Any
) -> AsyncIterator[dict[str, Any]]:
    settings = DeliverySettings(
        service_name=f"delivery-{unique_name}",
        canonical_topic=publish.topic,
        deliveries_topic=f"{unique_name}.deliveries",
        retry_schedule=["300ms", "600ms"],
        retry_jitter=0,
        allow_targets=["loopback"],
        subscription_refresh_ms=100,
        commit_interval_ms=200,
    )
    async with Database(migrated_database_url) as db:
        yield {"settings": settings, "db": db, "store": SubscriptionStore(db, KEYRING), "publish": publish}


def _verify(secret: str, request: dict[str, Any], *, json_parse: bool = True) -> Any:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return Webhook(secret).verify(request["body"], headers, json_parse=json_parse)


async def test_signed_ordered_retried_delivery(
    stack: dict[str, Any], partner: Partner, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    store: SubscriptionStore = stack["store"]
    sub = await store.add(name="acme", url=f"{partner.url}/acme", event_types=["order.*"], rate_limit_per_s=20)
    xml_sub = await store.add(name="erp", url=f"{partner.url}/erp", event_types=["order.paid"], content_type="xml")
    secret = sub.signing_secrets()[0]
    # The first attempt of o1's first event fails, the second is rate-limited with Retry-After: 1.
    partner.script["/acme#o1-1"] = [(500, {}), (429, {"Retry-After": "1"})]
    service = DeliveryService(kafka_bootstrap, migrated_database_url, settings=stack["settings"])
    async with service:
        await stack["publish"](
            canonical("o1-1", "shopify:1", 1, "order.created"),
            canonical("o2-1", "shopify:2", 1, "order.created"),
            canonical("o1-2", "shopify:1", 2, "order.paid"),
            canonical("o1-3", "shopify:1", 3, "order.fulfilled"),
            canonical("o2-2", "shopify:2", 2, "order.paid"),
        )
        await until(lambda: len(partner.at("/acme")) == 7 and len(partner.at("/erp")) == 2, what="all deliveries")
    acme = partner.at("/acme")
    payloads = [_verify(secret, r) for r in acme]  # the official library verifies every request
    order1 = [p["event_id"] for p in payloads if p["order_id"] == "shopify:1"]
    assert order1 == ["o1-1", "o1-1", "o1-1", "o1-2", "o1-3"]  # FIFO per (endpoint, order), retries first
    assert [p["event_id"] for p in payloads if p["order_id"] == "shopify:2"] == ["o2-1", "o2-2"]
    first_three = [r for r, p in zip(acme, payloads, strict=True) if p["event_id"] == "o1-1"]
    assert len({r["headers"]["webhook-id"] for r in first_three}) == 1  # stable across retries
    assert first_three[2]["at"] - first_three[1]["at"] >= 1.0  # Retry-After: 1 honoured (tier is 600 ms)
    erp = partner.at("/erp")
    assert all(r["headers"]["Content-Type"] == "application/xml" for r in erp)
    assert all(b"<type>order.paid</type>" in r["body"] for r in erp)
    _verify(xml_sub.signing_secrets()[0], erp[0], json_parse=False)

    async with Database(migrated_database_url) as db, db.connection() as conn:
        cur = await conn.execute(
            "SELECT d.event_id, d.status, d.attempts FROM deliveries d WHERE subscription_id = %s ORDER BY event_id",
            (sub.id,),
        )
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT status_code FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.event_id = 'o1-1' AND d.subscription_id = %s ORDER BY attempted_at",
            (sub.id,),
        )
        codes = [r["status_code"] for r in await cur.fetchall()]
    assert {r["event_id"]: (r["status"], r["attempts"]) for r in rows}["o1-1"] == ("delivered", 3)
    assert all(r["status"] == "delivered" for r in rows)
    assert codes == [500, 429, 200]


async def test_fanout_sends_first_attempts_itself_and_hands_failures_over_in_order(
    stack: dict[str, Any], partner: Partner, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    store: SubscriptionStore = stack["store"]
    sub = await store.add(name="fast", url=f"{partner.url}/fast", event_types=["order.*"])
    partner.script["/fast#o1-1"] = [(500, {})]  # the first attempt, made at fan-out, fails
    service = DeliveryService(kafka_bootstrap, migrated_database_url, settings=stack["settings"])
    async with service:
        await stack["publish"](canonical("o1-1", "shopify:31", 1, "order.created"))
        await until(lambda: len(partner.at("/fast")) == 1, what="the failed first attempt")
        await stack["publish"](
            canonical("o1-2", "shopify:31", 2, "order.paid"),  # behind o1-1 while it waits for its retry
            canonical("o2-1", "shopify:32", 1, "order.created"),  # another order: straight through
        )
        await until(lambda: len(partner.at("/fast")) == 4, what="every delivery")
    fast = partner.at("/fast")
    order1 = [json.loads(r["body"])["event_id"] for r in fast if b"shopify:31" in r["body"]]
    assert order1 == ["o1-1", "o1-1", "o1-2"]  # FIFO per (endpoint, order) across the hand-over
    first, retry = [r for r in fast if json.loads(r["body"])["event_id"] == "o1-1"]
    assert retry["at"] - first["at"] >= 0.3 * 0.9  # the schedule's first tier, not a second call at once
    # Only what had to wait went through deliveries.v1: o1-1 (handed over, marked) and o1-2 (queued behind it).
    queued = read_topic(kafka_bootstrap, stack["settings"].deliveries_topic, expect=2, timeout_s=10)
    marks = sorted((dict(m.headers() or [])[DELIVERY].decode(), ATTEMPTED in dict(m.headers() or [])) for m in queued)
    assert marks == sorted([(delivery_id(sub.id, "o1-1"), True), (delivery_id(sub.id, "o1-2"), False)])
    async with Database(migrated_database_url) as db, db.connection() as conn:
        cur = await conn.execute(
            "SELECT event_id, status, attempts FROM deliveries WHERE subscription_id = %s", (sub.id,)
        )
        rows = {r["event_id"]: (r["status"], r["attempts"]) for r in await cur.fetchall()}
    assert rows == {"o1-1": ("delivered", 2), "o1-2": ("delivered", 1), "o2-1": ("delivered", 1)}


async def test_gone_disables_exhausted_goes_to_dlq_and_ssrf_is_refused(
    stack: dict[str, Any], partner: Partner, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    store: SubscriptionStore = stack["store"]
    gone = await store.add(name="gone", url=f"{partner.url}/gone", event_types=["order.*"])
    await store.add(name="down", url=f"{partner.url}/down", event_types=["order.created"])
    await store.add(name="imds", url="http://169.254.169.254/latest", event_types=["order.created"])
    partner.script["/gone"] = [(410, {})]
    partner.script["/down"] = [(503, {})] * 10
    service = DeliveryService(kafka_bootstrap, migrated_database_url, settings=stack["settings"])
    async with service:
        await stack["publish"](canonical("g-1", "shopify:7", 1, "order.created"))
        await until(lambda: len(partner.at("/down")) == 3, what="three attempts at the failing endpoint")
        await stack["publish"](canonical("g-2", "shopify:7", 2, "order.paid"))
        dlq = service.sending.policy.dlq_topic
        letters = await _wait_letters(kafka_bootstrap, service, dlq, expect=2)
    assert len(partner.at("/gone")) == 1  # disabled after the 410: g-2 was not sent
    disabled = await store.get(gone.id)
    assert not disabled.enabled
    assert "410 Gone" in (disabled.disabled_reason or "")
    reasons = sorted(letter.reason for letter in letters)
    assert any("refused to prevent SSRF" in r and "metadata" in r for r in reasons), reasons
    assert any("HTTP 503" in r for r in reasons), reasons
    alerts = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, ALERTS.name, expect=1, timeout_s=10)]
    assert any(a["subscription_id"] == gone.id and a["type"] == "endpoint.disabled" for a in alerts)


async def _wait_letters(bootstrap: str, service: DeliveryService, topic: str, expect: int) -> list[Any]:
    deadline = time.monotonic() + 30
    while True:
        letters = await list_dead_letters(bootstrap, service.db, service.sending.service, topic)
        if len(letters) >= expect or time.monotonic() > deadline:
            return letters
        await asyncio.sleep(0.3)


async def test_failed_deliveries_are_recovered_in_order_and_retry_refuses_delivered_ones(
    stack: dict[str, Any], partner: Partner, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    store: SubscriptionStore = stack["store"]
    sub = await store.add(name="flaky", url=f"{partner.url}/flaky", event_types=["order.*"])
    partner.script["/flaky"] = [(500, {})] * 6  # both events exhaust their three attempts
    settings = stack["settings"].model_copy(update={"breaker_min_calls": 100})  # keep calling, breaker aside
    service = DeliveryService(kafka_bootstrap, migrated_database_url, settings=settings)
    async with service:
        await stack["publish"](
            canonical("f-1", "shopify:9", 1, "order.created"), canonical("f-2", "shopify:9", 2, "order.paid")
        )
        await until(lambda: len(partner.at("/flaky")) == 6, what="six failed attempts")
        await asyncio.sleep(0.5)
        async with Producer(kafka_bootstrap) as producer:
            since = datetime.now(UTC) - timedelta(hours=1)
            topic = stack["settings"].deliveries_topic
            assert await resend(service.db, producer, subscription_id=sub.id, since=since, topic=topic) == 2
            await until(lambda: len(partner.at("/flaky")) == 8, what="the recovered deliveries")
            delivered = delivery_id(sub.id, "f-1")
            with pytest.raises(ConfigurationError, match="delivered already"):
                await resend(service.db, producer, delivery=delivered, topic=topic)
            with pytest.raises(ConfigurationError, match="no delivery 'dlv_nope'"):
                await resend(service.db, producer, delivery="dlv_nope", topic=topic)
    recovered = [json.loads(r["body"])["event_id"] for r in partner.at("/flaky")[6:]]
    assert recovered == ["f-1", "f-2"]  # in their original order


def test_deliveries_cli_errors_are_one_line(kafka_bootstrap: str, migrated_database_url: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": migrated_database_url}
    cli = [sys.executable, "-m", "hookstream", "deliveries"]
    missing = subprocess.run([*cli, "retry", "dlv_nope"], env=env, capture_output=True, text=True)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: no delivery 'dlv_nope'")
    nothing = subprocess.run(
        [*cli, "recover", "sub_x", "--since", "2026-11-01T00:00:00"], env=env, capture_output=True, text=True
    )
    assert nothing.returncode == 0, nothing.stderr
    assert "0 failed deliveries of sub_x queued again" in nothing.stdout
    bad_time = subprocess.run(
        [*cli, "recover", "sub_x", "--since", "yesterday"], env=env, capture_output=True, text=True
    )
    assert bad_time.returncode == 2
    assert "Invalid value for '--since'" in bad_time.stderr


async def test_open_circuit_holds_requests_until_a_probe_succeeds(
    stack: dict[str, Any], partner: Partner, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    store: SubscriptionStore = stack["store"]
    sick_sub = await store.add(name="sick", url=f"{partner.url}/sick", event_types=["order.*"])
    partner.script["/sick"] = [(503, {})] * 2
    settings = stack["settings"].model_copy(
        update={"breaker_window": 4, "breaker_min_calls": 2, "breaker_cooldown_s": 2, "retry_schedule": ["200ms"] * 4}
    )
    service = DeliveryService(kafka_bootstrap, migrated_database_url, settings=settings)
    async with service:
        await stack["publish"](canonical("b-1", "shopify:21", 1, "order.created"))
        await until(lambda: len(partner.at("/sick")) == 1, what="the first failure")
        await stack["publish"](canonical("b-2", "shopify:22", 1, "order.created"))
        await until(lambda: len(partner.at("/sick")) == 2, what="the second failure, which opens the circuit")
        opened = time.monotonic()
        await stack["publish"](*[canonical(f"b-{n}", f"shopify:2{n}", 1, "order.created") for n in range(3, 7)])
        await asyncio.sleep(1.0)
        held = len(partner.at("/sick"))  # nothing goes out while the circuit is open (cooldown 2 s)
        circuits = CircuitLog(service.db)
        open_while_held = await circuits.open_now()  # what the admin shows as endpoint health
        await until(lambda: len(partner.at("/sick")) == 8, what="all six delivered after the probe")
        await asyncio.sleep(0.5)
        open_after = await circuits.open_now()
    assert list(open_while_held) == [sick_sub.id]
    assert open_while_held[sick_sub.id].instances == 1
    assert open_after == {}  # the probe's success closed it, and the store says so
    sick = partner.at("/sick")
    assert held == 2
    assert sick[2]["at"] - opened >= 2 * 0.9  # the probe, after the cooldown
    # 2 failures + 6 successes: no request was spent on the failing endpoint while the circuit was open.
    assert len(sick) == 8
    assert sorted(json.loads(r["body"])["event_id"] for r in sick[2:]) == [f"b-{n}" for n in range(1, 7)]
    async with Database(migrated_database_url) as db, db.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        assert {r["status"]: r["n"] for r in await cur.fetchall()} == {"delivered": 6}


async def test_an_endpoint_failing_longer_than_the_limit_is_disabled_with_an_alert(
    stack: dict[str, Any], partner: Partner, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    store: SubscriptionStore = stack["store"]
    sub = await store.add(name="dead", url=f"{partner.url}/dead", event_types=["order.*"])
    partner.script["/dead"] = [(500, {})] * 100
    settings = stack["settings"].model_copy(
        update={
            "auto_disable_after_hours": 1.5 / 3600,  # 1.5 s of continuous failure
            "breaker_min_calls": 100,
            "retry_schedule": ["400ms"] * 10,
        }
    )
    service = DeliveryService(kafka_bootstrap, migrated_database_url, settings=settings)

    async def is_disabled() -> bool:
        return not (await store.get(sub.id)).enabled

    async with service:
        await stack["publish"](canonical("d-1", "shopify:31", 1, "order.created"))
        await until(is_disabled, 20, "the endpoint to be disabled")
        attempts_when_disabled = len(partner.at("/dead"))
        await stack["publish"](canonical("d-2", "shopify:32", 1, "order.created"))
        await asyncio.sleep(1.5)
        async with service.db.connection() as conn:
            cur = await conn.execute("SELECT event_id, status FROM deliveries ORDER BY event_id")
            rows = {r["event_id"]: r["status"] for r in await cur.fetchall()}
    disabled = await store.get(sub.id)
    assert "failing continuously since" in (disabled.disabled_reason or "")
    assert 4 <= attempts_when_disabled <= 6  # about 1.5 s of attempts 400 ms apart
    assert len(partner.at("/dead")) == attempts_when_disabled  # nothing more was sent
    assert rows == {"d-1": "skipped"}  # the retry still queued was settled; d-2 was not queued for it
    alerts = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, ALERTS.name, expect=1, timeout_s=10)]
    assert [a["reason"][:26] for a in alerts if a["subscription_id"] == sub.id] == ["failing continuously since"]

"""The whole pipeline in one test: signed webhooks in at ingress, through the normalizer and the
delivery service, out to partner endpoints that fail, rate-limit, time out and recover on a script."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx2 as httpx
from hookstream.consumer import ConsumerSettings
from hookstream.consumer.dlq import list_dead_letters
from hookstream.db import Database
from hookstream.store.deliveries import FINAL, delivery_id
from hookstream.store.subscriptions import SubscriptionStore
from hookstream_schemas.topics import ALERTS
from hookstream_services.delivery.service import DeliveryService, DeliverySettings
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hookstream_services.ingress.publisher import KafkaPublisher
from hookstream_services.normalizer.service import NormalizerService, NormalizerSettings
from standardwebhooks import Webhook

from tests.kafka_helpers import read_topic
from tests.keys import KEYRING
from tests.normalizer_helpers import CANONICAL
from tests.partner import Answer, running_partner
from tests.signing import signed_sample, write_config
from tests.waiting import until

# Out of order on purpose: the normalizer holds "paid" until "created" is there.
SENT = [
    "shopify_orders_paid",
    "woocommerce_order_created",
    "shopify_orders_create",
    "custom_order_created",
    "stripe_payment_intent_succeeded",
    "shopify_orders_fulfilled",
]
RETRY_SCHEDULE = ["300ms", "600ms", "1s"]
TIMEOUT_MS = 500
SHOPIFY_ORDER = "shopify:5612345678901"


async def test_webhooks_flow_from_ingress_to_partners_that_fail_limit_time_out_and_recover(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path
) -> None:
    raw, canonical_topic = f"{unique_name}.raw", f"{unique_name}.canonical"
    normalizer = NormalizerService(
        kafka_bootstrap,
        migrated_database_url,
        settings=NormalizerSettings(
            service_name=f"normalizer-{unique_name}", raw_topic=raw, canonical_topic=canonical_topic
        ),
        consumer=ConsumerSettings(commit_interval_ms=200),
    )
    delivery = DeliveryService(
        kafka_bootstrap,
        migrated_database_url,
        settings=DeliverySettings(
            service_name=f"delivery-{unique_name}",
            canonical_topic=canonical_topic,
            deliveries_topic=f"{unique_name}.deliveries",
            retry_schedule=RETRY_SCHEDULE,
            retry_jitter=0.1,
            allow_targets=["loopback"],
            subscription_refresh_ms=100,
            breaker_min_calls=100,  # the breaker has its own test; here every attempt reaches the endpoint
            commit_interval_ms=200,
        ),
    )
    config = load_config(write_config(tmp_path / "ingress.toml", topic=raw))
    publisher = KafkaPublisher(kafka_bootstrap, config.ingress)

    async with running_partner() as partner, Database(migrated_database_url) as db:
        store = SubscriptionStore(db, KEYRING)
        subs = {
            "steady": await store.add(name="steady", url=f"{partner.url}/steady", event_types=["order.*"]),
            "flaky": await store.add(
                name="flaky", url=f"{partner.url}/flaky", event_types=["order.*"], timeout_ms=TIMEOUT_MS
            ),
            "limited": await store.add(
                name="limited", url=f"{partner.url}/limited", event_types=["*"], rate_limit_per_s=2
            ),
            "down": await store.add(name="down", url=f"{partner.url}/down", event_types=["order.created"]),
            "gone": await store.add(name="gone", url=f"{partner.url}/gone", event_types=["order.*"]),
            "private": await store.add(name="private", url="http://10.1.2.3/hook", event_types=["order.created"]),
        }
        # The first Shopify event fails at /flaky: a 500, a 429 asking for 1 s, an answer too late; then it recovers.
        partner.script[f"/flaky#{SHOPIFY_ORDER}/1"] = [
            Answer(500),
            Answer(429, {"Retry-After": "1"}),
            Answer(200, delay_s=TIMEOUT_MS / 1000 + 1),
        ]
        partner.script["/down"] = [Answer(503)] * 100
        partner.script["/gone"] = [Answer(410)] * 100

        await publisher.start()
        try:
            app = create_app(config, publisher)
            async with (
                normalizer,
                delivery,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress") as client,
            ):
                for sample in SENT:
                    channel, headers, body, _ = signed_sample(sample)
                    answer = await client.post(f"/webhooks/{channel}", content=body, headers=headers)
                    assert answer.status_code == 200, answer.text
                # A replay of an accepted webhook is accepted again and deduplicated downstream.
                channel, headers, body, _ = signed_sample("shopify_orders_create")
                assert (await client.post(f"/webhooks/{channel}", content=body, headers=headers)).status_code == 200

                canonical = [
                    CANONICAL.decode(m.value(), m.headers())
                    for m in await asyncio.to_thread(read_topic, kafka_bootstrap, canonical_topic, expect=6)
                ]
                events = {e["event_id"]: e for e in canonical}
                created = [e for e in canonical if e["type"] == "order.created"]

                n = len(canonical)
                expected = {"steady": n, "flaky": n, "limited": n, "down": len(created), "private": len(created)}

                last_counts: list[Any] = []

                async def settled() -> bool:
                    async with db.connection() as conn:
                        cur = await conn.execute(
                            "SELECT s.name, d.status, count(*) AS n FROM deliveries d"
                            " JOIN subscriptions s ON s.id = d.subscription_id GROUP BY 1, 2"
                        )
                        counts = await cur.fetchall()
                    last_counts[:] = counts
                    if any(r["status"] not in FINAL for r in counts):
                        return False
                    per_endpoint = Counter[str]()
                    for r in counts:
                        per_endpoint[r["name"]] += r["n"]
                    return all(per_endpoint[name] == n for name, n in expected.items()) and per_endpoint["gone"] > 0

                await until(settled, 60, lambda: f"every delivery to settle: {last_counts}")
                letters = await list_dead_letters(
                    kafka_bootstrap, delivery.db, delivery.sending.service, delivery.sending.policy.dlq_topic
                )
        finally:
            await publisher.stop()

        async with db.connection() as conn:
            cur = await conn.execute("SELECT id, subscription_id, event_id, status, attempts FROM deliveries")
            rows = {(r["subscription_id"], r["event_id"]): r for r in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT delivery_id, status_code, error FROM delivery_attempts ORDER BY attempted_at, attempt"
            )
            attempts: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for a in await cur.fetchall():
                attempts[a["delivery_id"]].append(a)

    # The normalizer put the out-of-order samples right, and dropped the replayed one.
    assert len(canonical) == len(events) == 6
    by_order: dict[str, list[str]] = defaultdict(list)
    for e in sorted(canonical, key=lambda e: (e["order_id"], e["sequence"])):
        by_order[e["order_id"]].append(e["type"])
    assert by_order[SHOPIFY_ORDER] == ["order.created", "order.paid", "order.paid", "order.fulfilled"]

    for name in ("steady", "flaky", "limited"):
        requests = partner.at(f"/{name}")
        secret = subs[name].signing_secrets()[0]
        # The official library verifies every request.
        verify = Webhook(secret).verify
        payloads = [verify(r["body"], {k.lower(): v for k, v in r["headers"].items()}) for r in requests]
        # Each event arrived, under one webhook-id of its own, and succeeded exactly once: nothing was redelivered.
        ids: dict[str, set[str]] = defaultdict(set)
        for r, p in zip(requests, payloads, strict=True):
            ids[r["headers"]["webhook-id"]].add(p["event_id"])
        assert all(len(v) == 1 for v in ids.values()), ids
        assert {next(iter(v)) for v in ids.values()} == set(events), name
        successes = [r["headers"]["webhook-id"] for r in requests if _succeeded(r)]
        assert sorted(successes) == sorted(ids), name
        # FIFO per (endpoint, order): an order's next event only after its previous one succeeded.
        for order, types in by_order.items():
            pairs = zip(requests, payloads, strict=True)
            seen = [(p["sequence"], _succeeded(r)) for r, p in pairs if p["order_id"] == order]
            assert [s for s, _ in seen] == sorted(s for s, _ in seen), (name, order, seen)
            assert [s for s, ok in seen if ok] == list(range(1, len(types) + 1)), (name, order, seen)

    # /flaky: 500 → retried after the first tier (300 ms ± 10 %); 429 → Retry-After: 1 s respected over the
    # 600 ms tier; an answer later than the 500 ms timeout → retried; then delivered.
    first = next(e["event_id"] for e in canonical if (e["order_id"], e["sequence"]) == (SHOPIFY_ORDER, 1))
    tries = [r for r in partner.at("/flaky") if json.loads(r["body"])["event_id"] == first]
    assert [(r["status"], r["late"]) for r in tries] == [(500, False), (429, False), (200, True), (200, False)]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(tries)]
    assert 0.27 <= gaps[0] < 3, gaps
    assert 1.0 <= gaps[1] < 4, gaps
    assert gaps[2] >= 1.0 * 0.9, gaps  # the third tier, 1 s
    log = attempts[delivery_id(subs["flaky"].id, first)]
    assert [a["status_code"] for a in log] == [500, 429, None, 200]
    assert log[2]["error"] == f"no answer within {TIMEOUT_MS} ms"

    # /limited: 2 per second with a burst of 2 holds over all its requests.
    at = sorted(r["at"] for r in partner.at("/limited"))
    for i, start in enumerate(at):
        within_1s = sum(1 for t in at[i:] if t - start < 1.0)
        assert within_1s <= 2 + 2, at
    assert at[-1] - at[0] >= (len(at) - 2) / 2 * 0.9

    # /down: every attempt of the schedule, then the DLQ and the delivery marked failed.
    down = subs["down"].id
    for e in created:
        assert (rows[(down, e["event_id"])]["status"], rows[(down, e["event_id"])]["attempts"]) == ("failed", 4)
    assert len(partner.at("/down")) == 4 * len(created)
    # /gone: the first 410 disabled the endpoint. A 410 is not retried; what was queued behind it (at least the
    # rest of that order) was skipped, and later events were not queued for it at all.
    gone_events = [json.loads(r["body"])["event_id"] for r in partner.at("/gone")]
    assert len(gone_events) == len(set(gone_events))
    gone_rows = {e: r["status"] for (s, e), r in rows.items() if s == subs["gone"].id}
    assert all(gone_rows[e] == "failed" for e in gone_events), gone_rows
    assert len(gone_events) < len(canonical), gone_events
    gone = await _subscription(migrated_database_url, subs["gone"].id)
    assert not gone["enabled"]
    assert "410 Gone" in gone["disabled_reason"]
    alerts = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, ALERTS.name, expect=1, timeout_s=10)]
    assert [a["type"] for a in alerts if a["subscription_id"] == subs["gone"].id] == ["endpoint.disabled"]
    # A private address is refused before any connection, with a reason that says so.
    reasons = [letter.reason for letter in letters]
    assert sum("HTTP 503" in r for r in reasons) == len(created), reasons
    refused = [r for r in reasons if "refused to prevent SSRF" in r]
    assert len(refused) == len(created), reasons
    assert all("10.1.2.3 (private address)" in r for r in refused), refused


def _succeeded(request: dict[str, Any]) -> bool:
    return bool(request["status"] < 300 and not request["late"])


async def _subscription(database_url: str, subscription_id: str) -> dict[str, Any]:
    async with Database(database_url) as db:
        subscription = await SubscriptionStore(db, KEYRING).get(subscription_id)
    return {"enabled": subscription.enabled, "disabled_reason": subscription.disabled_reason or ""}

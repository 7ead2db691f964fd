"""The normalizer against the real broker and database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hookstream.consumer.dlq import list_dead_letters, redrive, select
from hookstream.consumer.runtime import ConsumerSettings
from hookstream.db import Database
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.kafka.headers import header_dict
from hookstream.store.orders import OrderStore
from hookstream_services.normalizer import mapping
from hookstream_services.normalizer.service import NormalizerService, NormalizerSettings

from tests.kafka_helpers import read_topic
from tests.normalizer_helpers import CANONICAL, envelope, publish

FAST = ConsumerSettings(retry_delays=["300ms"], commit_interval_ms=200, session_timeout_ms=10_000)


class Pipeline:
    def __init__(self, bootstrap: str, database_url: str, name: str) -> None:
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.settings = NormalizerSettings(
            service_name=f"normalizer-{name}", raw_topic=f"{name}.raw", canonical_topic=f"{name}.canonical"
        )
        TopicAdmin(bootstrap).ensure_topics([TopicSpec(self.settings.raw_topic, 3, 3_600_000)])

    def service(self) -> NormalizerService:
        return NormalizerService(self.bootstrap, self.database_url, settings=self.settings, consumer=FAST)

    async def canonical(self, expect: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Everything committed on the canonical topic (read in a thread: the service shares this loop)."""
        records = await asyncio.to_thread(
            read_topic, self.bootstrap, self.settings.canonical_topic, expect=expect, timeout_s=timeout_s
        )
        return [CANONICAL.decode(m.value(), m.headers()) | {"_headers": header_dict(m.headers())} for m in records]

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "HOOKSTREAM_NORMALIZER_SERVICE_NAME": s.service_name,
            "HOOKSTREAM_NORMALIZER_RAW_TOPIC": s.raw_topic,
            "HOOKSTREAM_HEALTH_PORT": "0",
            "HOOKSTREAM_NORMALIZER_CANONICAL_TOPIC": s.canonical_topic,
            "HOOKSTREAM_CONSUMER_COMMIT_INTERVAL_MS": "200",
            "HOOKSTREAM_LOG_LEVEL": "WARNING",
        }


@pytest.fixture
def pipeline(kafka_bootstrap: str, migrated_database_url: str, unique_name: str) -> Pipeline:
    return Pipeline(kafka_bootstrap, migrated_database_url, unique_name)


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[Producer]:
    async with Producer(kafka_bootstrap) as p:
        yield p


async def _rows(database_url: str, query: str, *args: object) -> list[dict[str, Any]]:
    async with Database(database_url) as db, db.connection() as conn:
        cur = await conn.execute(query, args)  # type: ignore[arg-type]
        return list(await cur.fetchall())


def _by_order(events: list[dict[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    grouped: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in events:
        grouped[e["order_id"]].append((e["sequence"], e["type"]))
    return grouped


async def test_duplicates_give_exactly_one_canonical_event(pipeline: Pipeline, producer: Producer) -> None:
    raw = pipeline.settings.raw_topic
    create = envelope("shopify_orders_create")
    await publish(
        producer, raw, create, create, envelope("custom_order_created"), envelope("woocommerce_order_created")
    )
    async with pipeline.service():
        await publish(producer, raw, create, envelope("stripe_payment_intent_succeeded"))
        events = await pipeline.canonical(expect=4)
    assert sorted((e["order_id"], e["type"], e["sequence"]) for e in events) == [
        ("b2b-portal:B2B-2026-000317", "order.created", 1),
        ("shopify:5612345678901", "order.created", 1),
        ("shopify:5612345678901", "order.paid", 2),  # the Stripe payment, linked by its metadata
        ("woocommerce:727", "order.created", 1),
    ]
    paid = next(e for e in events if e["type"] == "order.paid")
    assert (paid["channel"], paid["amounts"]["paid"], paid["status"]) == ("stripe", "63.71", "paid")
    assert paid["_headers"]["traceparent"].startswith(b"00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert all(e["_headers"]["hookstream-event-type"] == e["type"].encode() for e in events)  # skipped undecoded

    # The read side others use (the admin, the CLI): the order and its timeline, without the normalizer.
    async with Database(pipeline.database_url) as db:
        orders = OrderStore(db)
        order = await orders.get("shopify:5612345678901")
        timeline = await orders.timeline("shopify:5612345678901")
        recent = await orders.recent()
        assert await orders.get("shopify:nope") is None
    assert order is not None
    assert (order.channel, order.status, order.sequence) == ("shopify", "paid", 2)
    assert [(t.type, t.outcome, t.sequence) for t in timeline] == [
        ("order.created", "applied", 1),
        ("order.paid", "applied", 2),
    ]
    assert {o.order_id for o in recent} == {"b2b-portal:B2B-2026-000317", "shopify:5612345678901", "woocommerce:727"}


async def test_reordered_deliveries_end_in_the_right_state_and_canonical_order(
    pipeline: Pipeline, producer: Producer
) -> None:
    raw = pipeline.settings.raw_topic
    stale_update = envelope(
        "shopify_orders_create",
        event_id="upd-old",
        order=1001,
        topic="orders/updated",
        body_changes={
            "updated_at": "2026-11-20T10:15:03+00:00",
            "customer": {"id": 7012345678901, "email": "old@example.com"},
        },
    )
    async with pipeline.service():
        # Fulfilled, then paid, then created: held until they can apply, then applied in order.
        await publish(
            producer,
            raw,
            envelope("shopify_orders_fulfilled", event_id="ful", order=1001),
            envelope("shopify_orders_paid", event_id="paid", order=1001),
            envelope("shopify_orders_create", event_id="create", order=1001),
            stale_update,
            # Created, cancelled, then paid: the payment after cancellation is a conflict.
            envelope("shopify_orders_create", event_id="c-create", order=2002),
            envelope("shopify_orders_cancelled", event_id="c-cancel", order=2002),
            envelope("shopify_orders_paid", event_id="c-paid", order=2002),
        )
        events = await pipeline.canonical(expect=5)
    assert _by_order(events) == {
        "shopify:1001": [(1, "order.created"), (2, "order.paid"), (3, "order.fulfilled")],
        "shopify:2002": [(1, "order.created"), (2, "order.cancelled")],
    }
    url = pipeline.database_url
    [order] = await _rows(
        url, "SELECT status, sequence, snapshot, tracking FROM orders WHERE order_id = 'shopify:1001'"
    )
    assert (order["status"], order["sequence"]) == ("fulfilled", 3)
    assert [t["number"] for t in order["tracking"]] == ["RR123456789PT"]
    assert order["snapshot"]["customer"]["email"] == "ana.silva@example.com"  # newest data, not the stale update's
    timeline = await _rows(url, "SELECT event_id, outcome, sequence FROM order_timeline ORDER BY order_id, event_id")
    outcomes = {r["event_id"]: (r["outcome"], r["sequence"]) for r in timeline}
    assert outcomes["shopify:upd-old"][0] == "stale"  # an older update never overwrites newer state
    assert outcomes["shopify:ful"] == ("applied", 3)
    assert outcomes["shopify:c-paid"] == ("conflict", None)
    [conflict] = await _rows(url, "SELECT event_id, reason FROM order_conflicts")
    assert conflict == {"event_id": "shopify:c-paid", "reason": "order.paid after the order was cancelled"}
    assert await _rows(url, "SELECT * FROM held_events") == []


async def test_poison_records_go_to_the_raw_dlq_and_the_partition_keeps_flowing(
    pipeline: Pipeline, producer: Producer, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = pipeline.settings.raw_topic
    service = pipeline.service()
    monkeypatch.delitem(mapping.SHOPIFY_TOPICS, "orders/paid")  # a release that forgot orders/paid
    async with service:
        bad_total = envelope("shopify_orders_create", event_id="bad-total", order=3003)
        bad_total["body"] = bad_total["body"].replace(b'"total_price": "63.71"', b'"total_price": "lots"')
        await publish(producer, raw, bad_total)
        await producer.send(raw, b"\x00not avro", key="shopify:3003")
        await publish(
            producer,
            raw,
            envelope("shopify_orders_create", event_id="ok-create", order=3003),
            envelope("shopify_orders_paid", event_id="paid-3003", order=3003),
            envelope("shopify_orders_create", event_id="after", order=3004),
        )
        events = await pipeline.canonical(expect=2)
        assert sorted(e["event_id"] for e in events) == ["shopify:after", "shopify:ok-create"]
        letters = await list_dead_letters(kafka_bootstrap, service.db, service.names.service, service.names.dlq_topic)
        reasons = sorted(d.reason for d in letters)
        assert len(reasons) == 3
        assert reasons[0].startswith("InvalidPayload: shopify payload of 'orders/create' is invalid: total_price")
        assert reasons[1].startswith("SchemaError: value is not a valid webhooks.raw.v1 record")
        assert reasons[2] == "UnsupportedEvent: Shopify topic 'orders/paid' has no canonical order event"
        assert all(d.attempts == 1 for d in letters)  # permanent: no retry tiers

        monkeypatch.setitem(mapping.SHOPIFY_TOPICS, "orders/paid", "order.paid")  # the fix
        async with Producer(kafka_bootstrap) as p:
            chosen = select(letters, event_ids=["paid-3003"])
            await redrive(p, service.db, service.names.service, chosen)
            await redrive(p, service.db, service.names.service, chosen)  # twice by mistake: still once
        events = await pipeline.canonical(expect=3)
    assert _by_order(events)["shopify:3003"] == [(1, "order.created"), (2, "order.paid")]


async def test_a_captured_signed_body_sent_again_under_a_fresh_id_or_a_forged_topic_changes_nothing(
    pipeline: Pipeline, producer: Producer, kafka_bootstrap: str
) -> None:
    """Shopify signs only the body: the webhook id and the topic are unsigned headers anyone holding a
    captured body can change. A fresh id is still a duplicate (the body's digest), a forged topic the
    body contradicts is a dead letter naming why."""
    raw = pipeline.settings.raw_topic
    service = pipeline.service()
    async with service:
        await publish(
            producer,
            raw,
            envelope("shopify_orders_create", event_id="create", order=4004),
            envelope("shopify_orders_create", event_id="create-again", order=4004),
            envelope("shopify_orders_create", event_id="forged-paid", order=4004, topic="orders/paid"),
            envelope("shopify_orders_paid", event_id="paid", order=4004),
            envelope("shopify_orders_paid", event_id="paid-again", order=4004),
            envelope("shopify_orders_create", event_id="next-order", order=4005),
        )
        events = await pipeline.canonical(expect=3)
        letters = await list_dead_letters(kafka_bootstrap, service.db, service.names.service, service.names.dlq_topic)
    assert _by_order(events) == {
        "shopify:4004": [(1, "order.created"), (2, "order.paid")],
        "shopify:4005": [(1, "order.created")],
    }
    assert sorted(e["event_id"] for e in events) == ["shopify:create", "shopify:next-order", "shopify:paid"]
    assert [(d.event_id, d.reason.split(":", 1)[0]) for d in letters] == [("forged-paid", "ContradictedEvent")]
    assert "financial_status is 'pending', not paid" in letters[0].reason


async def test_two_channels_that_use_the_same_event_id_both_get_through(pipeline: Pipeline, producer: Producer) -> None:
    """Event ids are each channel's own: a second custom channel numbering its events like the first
    must not have its events dropped as duplicates (they were: 200 at ingress, then silently nothing)."""
    raw = pipeline.settings.raw_topic
    first = envelope("custom_order_created", event_id="42", order="A-1")
    second = envelope("custom_order_created", event_id="42", order="B-1")
    second["channel"], second["order_key"] = "second-portal", "second-portal:B-1"
    async with pipeline.service():
        await publish(producer, raw, first, second, envelope("custom_order_created", event_id="42", order="A-1"))
        events = await pipeline.canonical(expect=2)
    assert sorted((e["event_id"], e["order_id"]) for e in events) == [
        ("b2b-portal:42", "b2b-portal:A-1"),
        ("second-portal:42", "second-portal:B-1"),
    ]  # and the first channel's own repeat is still a duplicate


async def test_kill_9_mid_stream_loses_nothing_and_duplicates_no_canonical_event(
    pipeline: Pipeline, producer: Producer
) -> None:
    raw = pipeline.settings.raw_topic
    orders = 2000
    pending = []
    for n in range(orders):
        order = 500_000 + n
        for sample, kind in (
            ("shopify_orders_create", "create"),
            ("shopify_orders_paid", "paid"),
            ("shopify_orders_fulfilled", "ful"),
        ):
            pending.append(publish(producer, raw, envelope(sample, event_id=f"k{n}-{kind}", order=order)))
    for i in range(0, len(pending), 500):  # produce() runs in list order: each order keeps its order
        await asyncio.gather(*pending[i : i + 500])
    expected = orders * 3
    command = [sys.executable, "-m", "hookstream", "run", "normalizer"]

    first = subprocess.Popen(command, env=pipeline.env(), stderr=subprocess.PIPE)  # noqa: ASYNC220 - starts at once
    try:
        deadline = time.monotonic() + 120
        while True:
            seen = await asyncio.to_thread(_count_committed, pipeline)
            if seen >= expected // 10:
                break
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            assert time.monotonic() < deadline, f"only {seen} canonical events after 120 s"
            await asyncio.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    before_restart = len(await pipeline.canonical(expected, timeout_s=10))  # a loaded box joins groups slowly
    assert 0 < before_restart < expected, f"killed after {before_restart} of {expected}: nothing was tested"

    second = subprocess.Popen(command, env=pipeline.env(), stderr=subprocess.PIPE)  # noqa: ASYNC220
    try:
        events = await pipeline.canonical(expected, 150)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            code = second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
            code = second.wait()
        assert code == 0, second.stderr.read().decode() if second.stderr else ""
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "a canonical event id was published twice"
    assert len(ids) == expected, f"{expected - len(ids)} canonical events were lost"
    for order_id, history in _by_order(events).items():
        assert history == [(1, "order.created"), (2, "order.paid"), (3, "order.fulfilled")], order_id


def _count_committed(pipeline: Pipeline) -> int:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": pipeline.bootstrap, "group.id": "count", "isolation.level": "read_committed"}
    )
    try:
        topic = pipeline.settings.canonical_topic
        metadata = consumer.list_topics(topic, timeout=5)
        total = 0
        for p in metadata.topics[topic].partitions:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
            except KafkaException:  # a topic this new may not have elected its leaders yet: ask again
                return 0
            total += high - low
        return total
    finally:
        consumer.close()

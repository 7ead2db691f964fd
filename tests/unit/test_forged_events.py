"""Shopify and WooCommerce sign the body, not the topic header or the webhook id: a captured signed
body sent again under another topic, or under a fresh id, must not become another order event."""

from __future__ import annotations

import json

import pytest
from hookstream_services.normalizer.mapping import ContradictedEvent, body_digest, normalize

from tests.normalizer_helpers import envelope


@pytest.mark.parametrize(
    ("sample", "forged_topic", "why"),
    [
        ("shopify_orders_create", "orders/paid", "financial_status is 'pending', not paid"),
        ("shopify_orders_create", "orders/cancelled", "cancelled_at is empty"),
        ("shopify_orders_create", "orders/fulfilled", "fulfillment_status is None, not fulfilled"),
        ("shopify_orders_paid", "orders/fulfilled", "fulfillment_status is None, not fulfilled"),
        ("shopify_orders_paid", "orders/cancelled", "cancelled_at is empty"),
    ],
)
def test_a_shopify_body_under_a_forged_topic_is_refused_with_the_reason(
    sample: str, forged_topic: str, why: str
) -> None:
    with pytest.raises(ContradictedEvent) as refused:
        normalize(envelope(sample, topic=forged_topic, event_id="fresh-id"))
    assert f"Shopify topic {forged_topic!r} (an unsigned header) is contradicted by the signed body: {why}" in str(
        refused.value
    )


def test_the_topics_the_bodies_do_show_still_map() -> None:
    assert normalize(envelope("shopify_orders_paid", topic="orders/paid")).type == "order.paid"
    assert normalize(envelope("shopify_orders_fulfilled", topic="orders/paid")).type == "order.paid"  # paid, too
    assert normalize(envelope("shopify_orders_cancelled")).type == "order.cancelled"
    assert normalize(envelope("shopify_orders_paid", topic="orders/updated")).type == "order.updated"


def test_a_refund_of_another_order_is_refused() -> None:
    refund = {"id": 9001, "order_id": 42, "created_at": "2026-11-22T10:00:00+00:00"}
    forged = envelope("shopify_orders_create", topic="refunds/create", body_changes={})
    forged["body"] = json.dumps(refund).encode()  # the refund of order 42, keyed as order 5612345678901
    with pytest.raises(ContradictedEvent, match="the refund is of order 42, not shopify:5612345678901"):
        normalize(forged)
    forged["order_key"] = "shopify:42"
    assert normalize(forged).type == "order.refunded"


def test_a_woocommerce_order_deleted_must_show_a_deleted_order() -> None:
    live = envelope("woocommerce_order_created")
    live["headers"]["x-wc-webhook-topic"] = "order.deleted"
    with pytest.raises(ContradictedEvent, match="the order's status is 'processing', not trash or cancelled"):
        normalize(live)
    trashed = json.loads(live["body"])
    trashed["status"] = "trash"
    live["body"] = json.dumps(trashed).encode()
    assert normalize(live).type == "order.cancelled"


def test_the_digest_covers_the_topic_and_the_signed_body() -> None:
    event = normalize(envelope("shopify_orders_paid", event_id="a"))
    again = normalize(envelope("shopify_orders_paid", event_id="b"))  # the same body, a fresh webhook id
    assert event.body_digest == again.body_digest is not None
    assert event.body_digest != normalize(envelope("shopify_orders_paid", topic="orders/updated")).body_digest
    assert body_digest("orders/paid", b"{}") != body_digest("orders/paid", b"{ }")
    assert normalize(envelope("stripe_payment_intent_succeeded")).body_digest is None  # Stripe signs its id

"""Each channel's payload → the canonical event, and precise reasons for what cannot be mapped."""

from __future__ import annotations

import pytest
from hookstream_services.normalizer.mapping import InvalidPayload, UnsupportedEvent, normalize

from tests.normalizer_helpers import CANONICAL, envelope
from tests.signing import EXPECTED, SAMPLES

CANONICAL_TYPES = {
    "shopify_orders_create": ("order.created", "63.71"),
    "shopify_orders_paid": ("order.paid", "63.71"),
    "shopify_orders_fulfilled": ("order.fulfilled", "63.71"),
    "shopify_orders_cancelled": ("order.cancelled", "63.71"),
    "woocommerce_order_created": ("order.created", "29.35"),
    "stripe_payment_intent_succeeded": ("order.paid", None),
    "stripe_payment_intent_payment_failed": ("order.payment_failed", None),
    "custom_order_created": ("order.created", "4820.00"),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_sample_maps_to_a_canonical_event_that_encodes(sample: str) -> None:
    event = normalize(envelope(sample))
    kind, total = CANONICAL_TYPES[sample]
    namespaced = f"{SAMPLES[sample]}:{EXPECTED[sample][0]}"  # the channel's own id, under the channel's name
    assert (event.type, event.order_id, event.event_id) == (kind, EXPECTED[sample][2], namespaced)
    assert event.amounts.get("total") == total
    record = event.to_avro(sequence=1, status="pending")
    decoded = CANONICAL.decode(CANONICAL.encode(record), CANONICAL.headers)
    assert decoded["occurred_at"] == event.occurred_at
    assert {k: v for k, v in decoded.items() if not k.endswith("_at")} == {
        k: v for k, v in record.items() if not k.endswith("_at")
    }


def test_fields_are_canonical() -> None:
    shopify = normalize(envelope("shopify_orders_fulfilled"))
    assert shopify.currency == "EUR"
    assert shopify.customer == {
        "id": "7012345678901",
        "email": "ana.silva@example.com",
        "name": "Ana Silva",
        "company": None,
    }
    assert shopify.items[0] == {"sku": "TSHIRT-BLK-M", "title": "Logo T-Shirt", "quantity": 2, "unit_price": "19.90"}
    assert shopify.tracking == [
        {"carrier": "CTT", "number": "RR123456789PT", "url": "https://tracking.example.com/RR123456789PT"}
    ]
    assert shopify.shipping_address is not None
    assert shopify.shipping_address["country"] == "PT"
    stripe = normalize(envelope("stripe_payment_intent_succeeded"))
    assert (stripe.amounts["paid"], stripe.currency, stripe.payment_reference) == (
        "63.71",
        "EUR",
        "pi_3QxY2nL5kPq8RtUv1x2y3z4w",
    )
    assert stripe.order_id == "shopify:5612345678901"  # the payment links to the Shopify order
    woo = normalize(envelope("woocommerce_order_created"))
    assert woo.occurred_at.isoformat() == "2026-11-20T14:02:13+00:00"  # *_gmt without a zone means UTC
    custom = normalize(envelope("custom_order_created"))
    assert custom.customer is not None
    assert custom.customer["company"] == "Contoso GmbH"


def test_invalid_payloads_say_which_field() -> None:
    with pytest.raises(InvalidPayload, match=r"total_price: Input should be a valid decimal"):
        normalize(envelope("shopify_orders_create", body_changes={"total_price": "sixty"}))
    with pytest.raises(InvalidPayload, match=r"line_items.0.quantity: Input should be greater than or equal to 0"):
        normalize(envelope("shopify_orders_create", body_changes={"line_items": [{"quantity": -1, "price": "1"}]}))
    with pytest.raises(InvalidPayload, match=r"type: Input should be 'order.created'"):
        normalize(envelope("custom_order_created", body_changes={"type": "order.teleported"}))
    with pytest.raises(UnsupportedEvent, match="Shopify topic 'products/create'"):
        normalize(envelope("shopify_orders_create", topic="products/create"))
    bad = envelope("shopify_orders_create")
    bad["body"] = b"\xff not json"
    with pytest.raises(InvalidPayload, match="body is not JSON"):
        normalize(bad)

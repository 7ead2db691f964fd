"""One raw webhook → one canonical order event (before the order's state decides its sequence)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hookstream import jsonbody
from hookstream.errors import PermanentError
from hookstream_services.normalizer.models import (
    CanonicalType,
    CustomAddress,
    CustomEvent,
    ShopifyAddress,
    ShopifyOrder,
    ShopifyRefund,
    StripeEvent,
    WooAddress,
    WooOrder,
)
from pydantic import ValidationError

STATUS_AFTER: dict[str, str | None] = {
    "order.created": "pending",
    "order.updated": None,  # keeps the status
    "order.paid": "paid",
    "order.payment_failed": "payment_failed",
    "order.fulfilled": "fulfilled",
    "order.shipped": "shipped",
    "order.cancelled": "cancelled",
    "order.refunded": "refunded",
}

SHOPIFY_TOPICS: dict[str, CanonicalType] = {
    "orders/create": "order.created",
    "orders/updated": "order.updated",
    "orders/edited": "order.updated",
    "orders/paid": "order.paid",
    "orders/fulfilled": "order.fulfilled",
    "orders/partially_fulfilled": "order.updated",
    "orders/cancelled": "order.cancelled",
    "refunds/create": "order.refunded",
}
STRIPE_TYPES: dict[str, CanonicalType] = {
    "payment_intent.succeeded": "order.paid",
    "payment_intent.payment_failed": "order.payment_failed",
    "charge.succeeded": "order.paid",
    "charge.failed": "order.payment_failed",
    "charge.refunded": "order.refunded",
}
WOO_STATUS: dict[str, CanonicalType] = {
    "completed": "order.fulfilled",
    "cancelled": "order.cancelled",
    "refunded": "order.refunded",
    "failed": "order.payment_failed",
}


class InvalidPayload(PermanentError):
    """The webhook is authentic but does not have the shape its channel promises."""


class UnsupportedEvent(PermanentError):
    """An event type the normalizer has no canonical meaning for."""


class ContradictedEvent(PermanentError):
    """The channel's unsigned topic header claims what its signed body does not show: a captured body
    sent again under another topic (Shopify and WooCommerce sign the body only)."""


# What a Shopify order body shows once its payment was taken (later refunds keep it taken).
SHOPIFY_PAID = frozenset({"paid", "partially_paid", "partially_refunded", "refunded"})
WOO_DELETED = frozenset({"trash", "cancelled"})


@dataclass(frozen=True)
class CanonicalEvent:
    event_id: str
    order_id: str
    channel: str
    type: str
    occurred_at: datetime
    received_at_ms: int
    currency: str | None = None
    amounts: dict[str, str | None] = field(default_factory=dict)
    customer: dict[str, str | None] | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    shipping_address: dict[str, str | None] | None = None
    billing_address: dict[str, str | None] | None = None
    tracking: list[dict[str, str | None]] = field(default_factory=list)
    payment_reference: str | None = None
    # True when the event carries a full order snapshot (customer, items, addresses) to keep.
    has_snapshot: bool = False
    # Channels that sign only the body (Shopify, WooCommerce): a digest of the topic and the signed body,
    # so the same body sent again under a fresh (unsigned) webhook id is still a duplicate.
    body_digest: str | None = None

    def to_avro(self, sequence: int, status: str) -> dict[str, Any]:
        amounts = {k: self.amounts.get(k) for k in ("total", "subtotal", "tax", "shipping", "discount", "paid")}
        return {
            "event_id": self.event_id,
            "order_id": self.order_id,
            "sequence": sequence,
            "channel": self.channel,
            "type": self.type,
            "status": status,
            "occurred_at": int(self.occurred_at.timestamp() * 1000),
            "received_at": self.received_at_ms,
            "currency": self.currency,
            "amounts": amounts,
            "customer": self.customer,
            "items": self.items,
            "shipping_address": self.shipping_address,
            "billing_address": self.billing_address,
            "tracking": self.tracking,
            "payment_reference": self.payment_reference,
        }


def channel_kind(headers: dict[str, str]) -> str:
    if "x-shopify-topic" in headers:
        return "shopify"
    if "x-wc-webhook-topic" in headers:
        return "woocommerce"
    if "stripe-signature" in headers:
        return "stripe"
    return "custom"


def normalize(envelope: dict[str, Any]) -> CanonicalEvent:
    """Raise InvalidPayload / UnsupportedEvent (permanent: dead-lettered with the reason)."""
    headers: dict[str, str] = envelope["headers"]
    received = envelope["received_at"]  # fastavro reads timestamp-millis as an aware datetime
    if isinstance(received, datetime):
        envelope = {**envelope, "received_at": int(received.timestamp() * 1000)}
    envelope = {**envelope, "event_id": namespaced(envelope["channel"], envelope["event_id"])}
    try:
        payload = jsonbody.loads(envelope["body"])
    except jsonbody.InvalidJson as exc:
        raise InvalidPayload(f"body is not JSON: {exc}") from exc
    kind = channel_kind(headers)
    try:
        if kind == "shopify":
            topic = headers.get("x-shopify-topic", "")
            return replace(_shopify(envelope, topic, payload), body_digest=body_digest(topic, envelope["body"]))
        if kind == "woocommerce":
            topic = headers.get("x-wc-webhook-topic", "")
            return replace(_woocommerce(envelope, topic, payload), body_digest=body_digest(topic, envelope["body"]))
        if kind == "stripe":
            return _stripe(envelope, payload)
        return _custom(envelope, payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise InvalidPayload(f"{kind} payload of {envelope['event_type']!r} is invalid: {problems}") from exc


def namespaced(channel: str, event_id: str) -> str:
    """An event id is the channel's own (two custom channels may both send "42", two WooCommerce stores
    number their deliveries alike): ours, from the canonical event on, is ``<channel>:<id>``, so the
    dedupe, the deliveries and every workflow's idempotency keys tell them apart."""
    return f"{channel}:{event_id}"


def body_digest(topic: str, body: bytes) -> str:
    return "sha256:" + hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()


def _contradicted(channel: str, topic: str, reason: str) -> ContradictedEvent:
    return ContradictedEvent(
        f"{channel} topic {topic!r} (an unsigned header) is contradicted by the signed body: {reason};"
        " a captured body sent again under another topic is refused"
    )


def _shopify_claim(kind: str, order: ShopifyOrder) -> str | None:
    """Why the signed order body does not show what the topic claims, or None if it does."""
    if kind == "order.paid" and order.financial_status not in SHOPIFY_PAID:
        return f"financial_status is {order.financial_status!r}, not paid"
    if kind == "order.fulfilled" and order.fulfillment_status != "fulfilled":
        return f"fulfillment_status is {order.fulfillment_status!r}, not fulfilled"
    if kind == "order.cancelled" and order.cancelled_at is None:
        return "cancelled_at is empty"
    return None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _name(*parts: str | None) -> str | None:
    joined = " ".join(p for p in parts if p)
    return joined or None


def _shopify_address(a: ShopifyAddress | None) -> dict[str, str | None] | None:
    if a is None:
        return None
    return {
        "name": _name(a.first_name, a.last_name),
        "line1": a.address1,
        "line2": a.address2,
        "city": a.city,
        "region": a.province_code,
        "postal_code": a.zip,
        "country": a.country_code,
        "phone": a.phone,
    }


def _shopify(envelope: dict[str, Any], topic: str, payload: Any) -> CanonicalEvent:
    kind = SHOPIFY_TOPICS.get(topic)
    if kind is None:
        raise UnsupportedEvent(f"Shopify topic {topic!r} has no canonical order event")
    base = {
        "event_id": envelope["event_id"],
        "order_id": envelope["order_key"],
        "channel": envelope["channel"],
        "received_at_ms": envelope["received_at"],
    }
    if topic == "refunds/create":
        refund = ShopifyRefund.model_validate(payload)
        if base["order_id"] != f"{envelope['channel']}:{refund.order_id}":
            raise _contradicted("Shopify", topic, f"the refund is of order {refund.order_id}, not {base['order_id']}")
        return CanonicalEvent(**base, type=kind, occurred_at=refund.created_at)
    order = ShopifyOrder.model_validate(payload)
    contradiction = _shopify_claim(kind, order)
    if contradiction is not None:
        raise _contradicted("Shopify", topic, contradiction)
    customer = order.customer
    tracking = [
        {"carrier": f.tracking_company, "number": f.tracking_number, "url": f.tracking_url}
        for f in order.fulfillments
        if f.tracking_number
    ]
    return CanonicalEvent(
        **base,
        type=kind,
        occurred_at=order.cancelled_at if kind == "order.cancelled" and order.cancelled_at else order.updated_at,
        currency=order.currency.upper(),
        amounts={
            "total": _money(order.total_price),
            "subtotal": _money(order.subtotal_price),
            "tax": _money(order.total_tax),
            "discount": _money(order.total_discounts),
        },
        customer=None
        if customer is None
        else {
            "id": str(customer.id) if customer.id is not None else None,
            "email": customer.email,
            "name": _name(customer.first_name, customer.last_name),
            "company": None,
        },
        items=[
            {"sku": i.sku, "title": i.title, "quantity": i.quantity, "unit_price": _money(i.price)}
            for i in order.line_items
        ],
        shipping_address=_shopify_address(order.shipping_address),
        billing_address=_shopify_address(order.billing_address),
        tracking=tracking,
        has_snapshot=True,
    )


def _woo_address(a: WooAddress | None) -> dict[str, str | None] | None:
    if a is None:
        return None
    return {
        "name": _name(a.first_name, a.last_name),
        "line1": a.address_1 or None,
        "line2": a.address_2 or None,
        "city": a.city,
        "region": a.state,
        "postal_code": a.postcode,
        "country": a.country,
        "phone": a.phone,
    }


def _woocommerce(envelope: dict[str, Any], topic: str, payload: Any) -> CanonicalEvent:
    order = WooOrder.model_validate(payload)
    if topic == "order.created":
        kind: CanonicalType = "order.created"
    elif topic in ("order.updated", "order.restored"):
        paid_now = order.status == "processing" and order.date_paid_gmt is not None
        kind = WOO_STATUS.get(order.status, "order.paid" if paid_now else "order.updated")
    elif topic == "order.deleted":
        if order.status not in WOO_DELETED:
            raise _contradicted("WooCommerce", topic, f"the order's status is {order.status!r}, not trash or cancelled")
        kind = "order.cancelled"
    else:
        raise UnsupportedEvent(f"WooCommerce topic {topic!r} has no canonical order event")
    billing = order.billing
    return CanonicalEvent(
        event_id=envelope["event_id"],
        order_id=envelope["order_key"],
        channel=envelope["channel"],
        received_at_ms=envelope["received_at"],
        type=kind,
        occurred_at=order.date_modified_gmt,
        currency=order.currency.upper(),
        amounts={
            "total": _money(order.total),
            "tax": _money(order.total_tax),
            "shipping": _money(order.shipping_total),
            "discount": _money(order.discount_total),
        },
        customer={
            "id": str(order.customer_id) if order.customer_id else None,
            "email": billing.email if billing else None,
            "name": _name(billing.first_name, billing.last_name) if billing else None,
            "company": (billing.company or None) if billing else None,
        },
        items=[
            {"sku": i.sku, "title": i.name, "quantity": i.quantity, "unit_price": _money(i.price)}
            for i in order.line_items
        ],
        shipping_address=_woo_address(order.shipping),
        billing_address=_woo_address(order.billing),
        payment_reference=order.transaction_id or None,
        has_snapshot=True,
    )


def _stripe(envelope: dict[str, Any], payload: Any) -> CanonicalEvent:
    event = StripeEvent.model_validate(payload)
    kind = STRIPE_TYPES.get(event.type)
    if kind is None:
        raise UnsupportedEvent(f"Stripe event type {event.type!r} has no canonical order event")
    obj = event.data.object
    minor = obj.amount_refunded if kind == "order.refunded" else (obj.amount_received or obj.amount)
    # Stripe amounts are in minor units; two decimals covers the currencies our channels sell in.
    paid = None if minor is None else format(Decimal(minor).scaleb(-2), "f")
    return CanonicalEvent(
        event_id=envelope["event_id"],
        order_id=envelope["order_key"],
        channel=envelope["channel"],
        received_at_ms=envelope["received_at"],
        type=kind,
        occurred_at=datetime.fromtimestamp(event.created, UTC),
        currency=obj.currency.upper(),
        amounts={"paid": paid},
        customer={"id": obj.customer, "email": obj.receipt_email, "name": None, "company": None}
        if obj.customer or obj.receipt_email
        else None,
        payment_reference=obj.payment_intent or obj.id,
    )


def _custom_address(a: CustomAddress | None) -> dict[str, str | None] | None:
    return None if a is None else a.model_dump()


def _custom(envelope: dict[str, Any], payload: Any) -> CanonicalEvent:
    event = CustomEvent.model_validate(payload)
    data = event.data
    return CanonicalEvent(
        event_id=envelope["event_id"],
        order_id=envelope["order_key"],
        channel=envelope["channel"],
        received_at_ms=envelope["received_at"],
        type=event.type,
        occurred_at=event.timestamp,
        currency=data.currency.upper() if data.currency else None,
        amounts={"total": _money(data.total)},
        customer=data.customer.model_dump() if data.customer else None,
        items=[
            {"sku": i.sku, "title": i.title, "quantity": i.quantity, "unit_price": _money(i.unit_price)}
            for i in data.items
        ],
        shipping_address=_custom_address(data.shipping_address),
        billing_address=_custom_address(data.billing_address),
        tracking=[t.model_dump() for t in data.tracking],
        has_snapshot=event.type in ("order.created", "order.updated"),
    )

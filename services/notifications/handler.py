"""Canonical order events → the customer: emails (and an SMS where the customer has a phone).

| event | email | SMS |
|---|---|---|
| order.created | order_confirmation | |
| order.shipped, order.fulfilled | shipping_notification (carrier, tracking link) | the tracking link |
| order.cancelled | order_cancelled | |
| order.payment_failed | payment_failed | |

(The payment confirmation, which carries the invoice, is the last step of the fulfillment chain.)
Each message is a resumable step keyed by (service, event id, step); an order without a customer
email gets no email, one without a phone no SMS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hookstream.avro import AvroSerde
from hookstream.connectors import SystemApi
from hookstream.connectors.email import Rendered, Templates
from hookstream.consumer import Record
from hookstream.consumer.steps import Steps

EMAILS = {
    "order.created": "order_confirmation",
    "order.shipped": "shipping_notification",
    "order.fulfilled": "shipping_notification",
    "order.cancelled": "order_cancelled",
    "order.payment_failed": "payment_failed",
}
KINDS = [*sorted(set(EMAILS.values())), "shipping_sms"]
SMS = {"order.shipped": "shipping_sms", "order.fulfilled": "shipping_sms"}
EVENT_TYPES = EMAILS.keys() | SMS.keys()


class Mail(Protocol):
    async def send(self, *, sender: str, to: str, rendered: Rendered, idempotency_key: str) -> str: ...


@dataclass(frozen=True)
class Senders:
    default: str
    per_channel: Mapping[str, str]

    def for_channel(self, channel: str) -> str:
        return self.per_channel.get(channel, self.default)


class Notify:
    def __init__(
        self,
        mail: Mail,
        sms: SystemApi | None,
        templates: Templates,
        steps: Steps,
        canonical: AvroSerde,
        senders: Senders,
    ) -> None:
        self.mail = mail
        self.sms = sms
        self.templates = templates
        self.steps = steps
        self.canonical = canonical
        self.senders = senders

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)  # SchemaError: permanent → DLQ
        kind = EMAILS.get(event["type"])
        context = message_context(event)
        email = (event.get("customer") or {}).get("email")
        if kind is not None and email:
            rendered = self.templates.render(kind, context)
            sender = self.senders.for_channel(event["channel"])
            await self.steps.run_in_transaction(
                event["event_id"], "email", lambda key: self._email(sender, email, rendered, key)
            )
        sms_kind = SMS.get(event["type"])
        phone = context["phone"]
        if sms_kind is not None and phone and self.sms is not None and context["tracking"]:
            text = self.templates.render(sms_kind, context).text.strip()
            sms = self.sms
            await self.steps.run(
                event["event_id"],
                "sms",
                lambda key: sms.call("POST", "/messages", {"to": phone, "text": text}, idempotency_key=key),
            )

    async def _email(self, sender: str, to: str, rendered: Rendered, key: str) -> dict[str, Any]:
        message_id = await self.mail.send(sender=sender, to=to, rendered=rendered, idempotency_key=key)
        return {"message_id": message_id, "to": to, "subject": rendered.subject}


def message_context(event: Mapping[str, Any]) -> dict[str, Any]:
    """What templates see: the order, its customer, lines, total, tracking and the phone to text."""
    shipping = event.get("shipping_address") or {}
    billing = event.get("billing_address") or {}
    customer = event.get("customer") or {}
    return {
        "order_id": event["order_id"],
        "order_number": str(event["order_id"]).split(":", 1)[-1],
        "channel": event["channel"],
        "status": event["status"],
        "customer_name": customer.get("name") or shipping.get("name") or "customer",
        "currency": event.get("currency") or "",
        "total": (event.get("amounts") or {}).get("total") or "",
        "items": [
            {
                "title": i.get("title") or i.get("sku") or "item",
                "quantity": i.get("quantity"),
                "price": i.get("unit_price"),
            }
            for i in event.get("items") or []
        ],
        "tracking": [
            {"carrier": t.get("carrier") or "carrier", "number": t["number"], "url": t.get("url") or ""}
            for t in event.get("tracking") or []
        ],
        "phone": shipping.get("phone") or billing.get("phone"),
    }


SAMPLE_EVENT: dict[str, Any] = {
    "order_id": "shopify:1001",
    "channel": "shopify",
    "status": "shipped",
    "currency": "EUR",
    "amounts": {"total": "63.71"},
    "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
    "items": [{"title": "Mug", "sku": "MUG-1", "quantity": 2, "unit_price": "12.50"}],
    "tracking": [{"carrier": "DHL", "number": "JD0001", "url": "https://track.example/JD0001"}],
    "shipping_address": {"name": "Ada Lovelace", "phone": "+441234567890"},
}

"""Canonical order events → the CRM: the customer and the order kept current there.

- ``order.created`` / ``order.updated``: upsert the customer as a contact (by email), then the
  order (by our order id), linked to the contact; the CRM's id for the order is kept on the order
  (``order_refs``, system ``crm``).
- ``order.paid``, ``order.fulfilled``, ``order.shipped``, ``order.cancelled``, ``order.refunded``:
  the order's status; ``order.payment_failed`` flags the order in the CRM.

Each call is a resumable step (``Steps``): a retry resumes at the step that failed, and every call
carries an Idempotency-Key of (service, event id, step).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import psycopg
from hookstream.avro import AvroSerde
from hookstream.connectors import SystemApi
from hookstream.consumer import Record
from hookstream.consumer.steps import StepResult, Steps
from hookstream.errors import PermanentError
from hookstream.store.orders import set_order_ref

UPSERTS = frozenset({"order.created", "order.updated"})
STATUS_UPDATES = frozenset({"order.paid", "order.fulfilled", "order.shipped", "order.cancelled", "order.refunded"})
FLAGS = {"order.payment_failed": "payment_failed"}
EVENT_TYPES = UPSERTS | STATUS_UPDATES | FLAGS.keys()


class CrmSync:
    def __init__(self, api: SystemApi, steps: Steps, canonical: AvroSerde) -> None:
        self.api = api
        self.steps = steps
        self.canonical = canonical

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)  # SchemaError: permanent → DLQ
        kind = event["type"]
        if kind in UPSERTS:
            await self._upsert(event)
        elif kind in STATUS_UPDATES:
            await self._update(event, {"status": event["status"], "last_event": kind})
        elif kind in FLAGS:
            await self._update(event, {"flag": FLAGS[kind], "last_event": kind})

    async def _upsert(self, event: dict[str, Any]) -> None:
        order_id = event["order_id"]
        steps = self.steps.of(event["event_id"])
        customer = event.get("customer") or {}
        contact_id = None
        if customer.get("email"):
            path = f"/contacts/{quote(customer['email'].lower(), safe='')}"
            contact = await steps.run(
                "contact", lambda key: self.api.call("PUT", path, _contact(customer), idempotency_key=key)
            )
            contact_id = _id(contact, "contact")

        async def keep_ref(conn: psycopg.AsyncConnection[Any], result: StepResult) -> None:
            await set_order_ref(conn, order_id, "crm", _id(result, "order"))

        await steps.run(
            "order",
            lambda key: self.api.call("PUT", f"/orders/{order_id}", _order(event, contact_id), idempotency_key=key),
            effects=keep_ref,
        )

    async def _update(self, event: dict[str, Any], change: dict[str, Any]) -> None:
        order_id = event["order_id"]
        await self.steps.run(
            event["event_id"],
            "status",
            lambda key: self.api.call("PATCH", f"/orders/{order_id}", change, idempotency_key=key),
        )


def _id(answer: StepResult, what: str) -> str:
    value = answer.get("id")
    if not isinstance(value, str | int) or value == "":
        raise PermanentError(f"the CRM's answer to the {what} upsert has no id: {str(answer)[:200]}")
    return str(value)


def _contact(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "email": customer["email"].lower(),
        "name": customer.get("name"),
        "company": customer.get("company"),
        "external_id": customer.get("id"),
    }


def _order(event: dict[str, Any], contact_id: str | None) -> dict[str, Any]:
    amounts = event.get("amounts") or {}
    return {
        "external_id": event["order_id"],
        "channel": event["channel"],
        "contact_id": contact_id,
        "status": event["status"],
        "currency": event.get("currency"),
        "total": amounts.get("total"),
        "items": [{"sku": i.get("sku"), "quantity": i.get("quantity")} for i in event.get("items") or []],
    }

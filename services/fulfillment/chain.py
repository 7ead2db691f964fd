"""The order.paid chain: invoice → (risk clearance) → settlement delay → warehouse → payment email;
and, beside it, a credit note for a refund, or for a cancellation after the invoice was issued.

A step starts only after the one before it succeeded, and every step is resumable (a retry resumes
at the failed step and never repeats a finished one):

1. **invoice**: the next number of the shop and the PDF, stored together (``hookstream.store.invoices``);
   ``invoice_generated`` on ``orders.fulfillment.v1``.
2. **risk**: the order's verdict from ``order_risk``. Held, or not assessed yet: the chain waits
   (``waiting_for_risk``) until the verdict consumer sees ``cleared`` or ``released``; ``cancelled``
   ends it, with a credit note for the invoice.
3. **settlement delay**: not before ``settlement_delay_ms`` after the payment (a retriable wait).
4. **warehouse**: the fulfillment request, with priority when the total is over the threshold;
   the warehouse's id in ``order_refs``; ``fulfillment_requested``.
5. **payment confirmation email** with the invoice attached (at-least-once, see ``Mailer``).

**One payment, one chain**: a second ``order.paid`` for an order whose chain exists (a Stripe
``payment_intent.succeeded`` after Shopify's ``orders/paid``) is an update and starts nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import psycopg
from hookstream.avro import AvroSerde
from hookstream.connectors import SystemApi, SystemRejected
from hookstream.connectors.email import Attachment, Rendered, Templates
from hookstream.consumer import Record
from hookstream.consumer.steps import StepResult, Steps
from hookstream.db import Database
from hookstream.errors import PermanentError, RetriableError
from hookstream.kafka.headers import EVENT_ID
from hookstream.kafka.outbox import add_many_to_outbox
from hookstream.store import invoices
from hookstream.store.orders import OrderRefs, OrderStore, set_order_ref
from hookstream.store.risk import RiskStore
from hookstream_services.fulfillment.documents import Seller, render
from psycopg.types.json import Jsonb

log = logging.getLogger("hookstream.fulfillment")


class Mail(Protocol):
    async def send(
        self, *, sender: str, to: str, rendered: Rendered, idempotency_key: str, attachments: Any = ()
    ) -> str: ...


class SettlementPending(RetriableError):
    """The payment has not settled for the configured delay yet; the chain goes on after it."""


@dataclass(frozen=True)
class Policy:
    priority_over: Decimal = Decimal("500")
    settlement_delay_ms: int = 0
    wait_for_risk: bool = True
    sender: str = ""
    seller: Seller = field(default_factory=lambda: Seller("hookstream shop"))
    font_path: str | None = None


@dataclass(frozen=True)
class Topics:
    service: str
    fulfillment_topic: str


class Chain:
    def __init__(
        self,
        db: Database,
        warehouse: SystemApi,
        mail: Mail,
        templates: Templates,
        steps: Steps,
        canonical: AvroSerde,
        fulfillment: AvroSerde,
        verdicts: AvroSerde,
        policy: Policy,
        topics: Topics,
        risk: RiskStore,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.warehouse = warehouse
        self.mail = mail
        self.templates = templates
        self.steps = steps
        self.canonical = canonical
        self.fulfillment = fulfillment
        self.verdicts = verdicts
        self.policy = policy
        self.topics = topics
        self.risk = risk
        self.on_queued = on_queued
        self.clock = clock
        self.orders = OrderStore(db)

    # the two consumers' handlers

    ORDER_EVENT_TYPES = frozenset({"order.created", "order.paid", "order.cancelled", "order.refunded"})

    async def on_order_event(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)
        kind = event["type"]
        if kind == "order.created":
            body = {"order_id": event["order_id"], "status": "new", "lines": _lines(event)}
            path = f"/orders/{event['order_id']}"
            await self.steps.run(
                event["event_id"], "notify", lambda key: self.warehouse.call("PUT", path, body, idempotency_key=key)
            )
        elif kind == "order.paid":
            if await self._start(event):
                await self.advance(event["order_id"])
        elif kind == "order.cancelled":
            await self._cancel(event["order_id"], event["event_id"])
        elif kind == "order.refunded":
            await self._credit_note(event)

    async def on_verdict(self, record: Record) -> None:
        verdict = self.verdicts.decode(record.value or b"", record.headers)
        if verdict["verdict"] in ("cleared", "released"):
            await self.advance(verdict["order_id"])
        elif verdict["verdict"] == "cancelled":
            await self._cancel(verdict["order_id"], verdict["event_id"])

    # the chain

    async def _start(self, event: dict[str, Any]) -> bool:
        """Record the chain; False when another payment signal started it already."""
        order = await self._order_data(event)
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """INSERT INTO fulfillment_chains (service, order_id, paid_event_id, paid_at, state, order_data)
                   VALUES (%s, %s, %s, %s, 'running', %s) ON CONFLICT DO NOTHING""",
                (self.topics.service, event["order_id"], event["event_id"], event["occurred_at"], Jsonb(order)),
            )
            if cur.rowcount:
                return True
            cur = await conn.execute(
                "SELECT paid_event_id FROM fulfillment_chains WHERE service = %s AND order_id = %s",
                (self.topics.service, event["order_id"]),
            )
            row = await cur.fetchone()
        first = row["paid_event_id"] if row else None
        if first == event["event_id"]:
            return True  # a redelivery of the payment that started it: go on where it stopped
        log.info(
            "second payment signal for an order: its chain runs once",
            extra={"order_id": event["order_id"], "event_id": event["event_id"], "chain_started_by": first},
        )
        return False

    async def _chain(self, order_id: str) -> dict[str, Any] | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT paid_event_id, paid_at, state, order_data FROM fulfillment_chains
                   WHERE service = %s AND order_id = %s""",
                (self.topics.service, order_id),
            )
            return await cur.fetchone()

    async def advance(self, order_id: str) -> None:
        chain = await self._chain(order_id)
        if chain is None or chain["state"] in ("done", "cancelled"):
            return
        paid = str(chain["paid_event_id"])
        order: dict[str, Any] = chain["order_data"]
        invoice = await self._invoice(order, paid)
        if self.policy.wait_for_risk:
            assessment = await self.risk.get(order_id)
            if assessment is None or assessment.verdict == "held":
                await self._set_state(order_id, "waiting_for_risk", paid, "waiting_for_risk")
                return
            if assessment.verdict == "cancelled":
                await self._credit_if_invoiced(order, f"{paid}:cancelled")
                await self._set_state(order_id, "cancelled", paid, None)
                return
        paid_at: datetime = chain["paid_at"]
        due_ms = paid_at.timestamp() * 1000 + self.policy.settlement_delay_ms
        now_ms = self.clock() * 1000
        if now_ms < due_ms:
            raise SettlementPending(
                f"payment of {order_id} settles for {self.policy.settlement_delay_ms} ms",
                retry_after_ms=int(due_ms - now_ms),
            )
        priority = _total(order) > self.policy.priority_over
        body = {
            "order_id": order_id,
            "priority": priority,
            "lines": _lines(order),
            "ship_to": order.get("shipping_address"),
            "invoice_number": invoice["number"],
        }

        async def requested(conn: psycopg.AsyncConnection[Any], result: StepResult) -> None:
            if not result.get("id"):
                raise PermanentError(f"the warehouse's answer has no fulfillment id: {str(result)[:200]}")
            await set_order_ref(conn, order_id, "warehouse", str(result["id"]))
            await self._publish(
                conn, order_id, paid, "fulfillment_requested", fulfillment_id=str(result["id"]), priority=priority
            )

        await self.steps.run(
            paid,
            "warehouse",
            lambda key: self.warehouse.call("POST", "/fulfillments", body, idempotency_key=key),
            effects=requested,
        )
        email = (order.get("customer") or {}).get("email")
        if email:
            await self.steps.run_in_transaction(
                paid, "payment_email", lambda key: self._email(order, invoice, priority, email, key)
            )
        await self._set_state(order_id, "done", paid, "chain_completed")

    async def _invoice(self, order: dict[str, Any], paid: str) -> dict[str, Any]:
        """Issue (or find) the order's invoice; ``invoice_generated`` goes out with the first issue."""
        invoice = await self._issue("invoice", order, paid, "invoice_generated")
        return {"number": invoice.number, "pdf": invoice.pdf}

    async def _credit_note(self, event: dict[str, Any]) -> None:
        """A credit note for the refund: the refunded amount (``amounts.paid``) or, if the event does not
        say, the order's total; one per order, numbered like invoices (``CN-<SHOP>-NNNNNN``)."""
        chain = await self._chain(event["order_id"])
        order: dict[str, Any] = dict(chain["order_data"]) if chain else await self._order_data(event)
        refunded = (event.get("amounts") or {}).get("paid") or (order.get("amounts") or {}).get("total")
        order["amounts"] = {**(order.get("amounts") or {}), "total": refunded}
        await self._issue("credit_note", order, event["event_id"], "credit_note_generated")

    async def _credit_if_invoiced(self, order: dict[str, Any], cause: str) -> None:
        """An order cancelled after its invoice was issued (a held order an operator cancels, a customer
        who cancels before shipping) gets a credit note for the whole invoice, so the books balance.
        Before the state changes: a retry after a crash issues it then (one per order, like a refund's)."""
        issued = await invoices.InvoiceStore(self.db).for_order(order["order_id"])
        if any(d.kind == "invoice" for d in issued):
            await self._issue("credit_note", order, cause, "credit_note_generated")

    async def _issue(self, kind: str, order: dict[str, Any], cause: str, announce: str) -> invoices.Invoice:
        """The order's document of ``kind``, issued and announced (``cause``:announce) in one transaction."""
        async with self.db.transaction() as conn:
            document, new = await invoices.issue(
                conn,
                shop=str(order["channel"]),
                kind=kind,
                order_id=order["order_id"],
                total=(order.get("amounts") or {}).get("total"),
                currency=order.get("currency"),
                render=lambda number: render(
                    kind,
                    number,
                    order,
                    seller=self.policy.seller,
                    issued_at=datetime.now(UTC),
                    font_path=self.policy.font_path,
                ),
            )
            if new:
                await self._publish(conn, order["order_id"], cause, announce, invoice_number=document.number)
        if new:
            self.on_queued()
        return document

    async def _email(
        self, order: dict[str, Any], invoice: dict[str, Any], priority: bool, to: str, key: str
    ) -> dict[str, Any]:
        customer = order.get("customer") or {}
        rendered = self.templates.render(
            "payment_confirmation",
            {
                "order_number": str(order["order_id"]).split(":", 1)[-1],
                "customer_name": customer.get("name") or "customer",
                "total": (order.get("amounts") or {}).get("total") or "",
                "currency": order.get("currency") or "",
                "invoice_number": invoice["number"],
                "priority": priority,
            },
        )
        attachment = Attachment(f"{invoice['number']}.pdf", bytes(invoice["pdf"]))
        message_id = await self.mail.send(
            sender=self.policy.sender, to=to, rendered=rendered, idempotency_key=key, attachments=[attachment]
        )
        return {"message_id": message_id, "to": to}

    async def _cancel(self, order_id: str, event_id: str) -> None:
        chain = await self._chain(order_id)
        if chain is None or chain["state"] == "cancelled":
            return
        fulfillment = await OrderRefs(self.db).get(order_id, "warehouse")
        paid = str(chain["paid_event_id"])
        if fulfillment is not None:
            await self.steps.run(
                event_id, "cancel_fulfillment", lambda key: self._cancel_at_warehouse(fulfillment, key)
            )
        await self._credit_if_invoiced(chain["order_data"], f"{paid}:cancelled")
        await self._set_state(order_id, "cancelled", paid, "fulfillment_cancelled" if fulfillment else None)

    async def _cancel_at_warehouse(self, fulfillment_id: str, key: str) -> dict[str, Any]:
        try:
            return await self.warehouse.call("DELETE", f"/fulfillments/{fulfillment_id}", {}, idempotency_key=key)
        except SystemRejected as exc:
            if exc.status == 404:
                return {"cancelled": False, "reason": "the warehouse has no such fulfillment"}
            raise

    async def _set_state(self, order_id: str, state: str, paid: str, announce: str | None) -> None:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                """UPDATE fulfillment_chains SET state = %s, updated_at = now()
                   WHERE service = %s AND order_id = %s AND state <> %s AND state NOT IN ('done', 'cancelled')""",
                (state, self.topics.service, order_id, state),
            )
            if cur.rowcount and announce:
                await self._publish(conn, order_id, paid, announce)
        if cur.rowcount and announce:
            self.on_queued()

    async def _publish(
        self, conn: psycopg.AsyncConnection[Any], order_id: str, paid: str, kind: str, **fields: Any
    ) -> None:
        event_id = f"{paid}:{kind}"
        value = self.fulfillment.encode(
            {
                "event_id": event_id,
                "order_id": order_id,
                "kind": kind,
                "invoice_number": fields.get("invoice_number"),
                "fulfillment_id": fields.get("fulfillment_id"),
                "priority": bool(fields.get("priority", False)),
                "at": datetime.now(UTC),
            }
        )
        headers = [*self.fulfillment.headers, (EVENT_ID, event_id.encode())]
        await add_many_to_outbox(
            conn, self.topics.service, self.topics.fulfillment_topic, [(order_id, event_id, value, headers)]
        )

    async def _order_data(self, event: dict[str, Any]) -> dict[str, Any]:
        """The order's lines, customer and totals: from the payment event, or, when it carries no lines
        (a Stripe payment), from the order as the normalizer keeps it."""
        data = {k: event.get(k) for k in SNAPSHOT}
        if not data["items"]:
            stored = await self.orders.get(event["order_id"])
            if stored is not None and stored.snapshot:
                data |= {k: v for k, v in stored.snapshot.items() if k in SNAPSHOT and v}
        return {"order_id": event["order_id"], "channel": event["channel"], **data}


SNAPSHOT = ("currency", "amounts", "customer", "items", "shipping_address", "billing_address")


def _lines(order: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"sku": i.get("sku"), "quantity": i.get("quantity")} for i in order.get("items") or []]


def _total(order: dict[str, Any]) -> Decimal:
    try:
        return Decimal((order.get("amounts") or {}).get("total") or "0")
    except InvalidOperation:
        return Decimal(0)

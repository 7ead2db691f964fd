"""Order state in Postgres: a sequence-aware state machine.

Each event either applies (and becomes the order's next canonical event), is held until what it
depends on has applied (paid before created, fulfilled before paid), is stale (an update older
than what the order already shows), is a conflict (anything but a refund after cancellation), or
is ignored (a second order.created). Everything is written to the order's timeline; conflicts
also to ``order_conflicts`` for people to look at. One transaction, the order row locked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from hookstream_services.normalizer.mapping import STATUS_AFTER, CanonicalEvent

log = logging.getLogger("hookstream.normalizer")

# What must have applied before an event of each type can apply.
REQUIRES: dict[str, str | None] = {
    "order.created": None,
    "order.updated": "created",
    "order.paid": "created",
    "order.payment_failed": "created",
    "order.cancelled": "created",
    "order.fulfilled": "paid",
    "order.shipped": "paid",
    "order.refunded": "paid",
}
FLAG_SET_BY = {"order.created": "created", "order.paid": "paid", "order.fulfilled": "fulfilled"}
ALLOWED_AFTER_CANCELLATION = {"order.refunded"}


@dataclass(frozen=True)
class Applied:
    event: CanonicalEvent
    sequence: int
    status: str


@dataclass
class OrderState:
    order_id: str
    channel: str
    status: str | None
    created: bool
    paid: bool
    fulfilled: bool
    cancelled: bool
    sequence: int
    source_updated_at: datetime | None
    snapshot: dict[str, Any]
    held: int

    def has(self, flag: str) -> bool:
        return bool(getattr(self, flag))


def event_to_json(event: CanonicalEvent) -> str:
    data = asdict(event)
    data["occurred_at"] = event.occurred_at.isoformat()
    return json.dumps(data)


def event_from_json(data: dict[str, Any]) -> CanonicalEvent:
    return CanonicalEvent(**{**data, "occurred_at": datetime.fromisoformat(data["occurred_at"])})


async def apply_event(conn: psycopg.AsyncConnection[Any], event: CanonicalEvent) -> list[Applied]:
    """Apply ``event`` inside the caller's transaction; return the canonical events to publish, in order."""
    state = await _lock_order(conn, event)
    applied: list[Applied] = []
    verdict = _verdict(state, event)
    if verdict is None:
        applied.append(await _apply(conn, state, event))
        applied += await _release_held(conn, state)
    else:
        await _record_unapplied(conn, state, event, verdict)
    await _save(conn, state)
    return applied


def _verdict(state: OrderState, event: CanonicalEvent) -> tuple[str, str] | None:
    """None: apply now. Else (outcome, detail) for the timeline."""
    if state.cancelled and event.type not in ALLOWED_AFTER_CANCELLATION:
        return "conflict", f"{event.type} after the order was cancelled"
    if event.type == "order.created" and state.created:
        return "ignored", "the order was already created"
    needed = REQUIRES[event.type]
    if needed is not None and not state.has(needed):
        return "held", needed
    if event.type == "order.updated" and state.source_updated_at and event.occurred_at < state.source_updated_at:
        return (
            "stale",
            f"updated_at {event.occurred_at.isoformat()} is older than {state.source_updated_at.isoformat()}",
        )
    return None


async def _lock_order(conn: psycopg.AsyncConnection[Any], event: CanonicalEvent) -> OrderState:
    # One round trip: the no-op update on conflict both locks the existing row and returns it.
    cur = await conn.execute(
        """INSERT INTO orders (order_id, channel) VALUES (%s, %s)
           ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
           RETURNING order_id, channel, status, created, paid, fulfilled, cancelled, sequence,
                     source_updated_at, snapshot, held""",
        (event.order_id, event.channel),
    )
    row = await cur.fetchone()
    assert row is not None
    return OrderState(**row)


async def _apply(conn: psycopg.AsyncConnection[Any], state: OrderState, event: CanonicalEvent) -> Applied:
    state.sequence += 1
    status = STATUS_AFTER[event.type] or state.status or "pending"
    state.status = status
    flag = FLAG_SET_BY.get(event.type)
    if flag:
        setattr(state, flag, True)
    if event.type == "order.fulfilled":
        state.paid = True
    if event.type == "order.cancelled":
        state.cancelled = True
    # Only newer data overwrites what the order shows: a late-applied event keeps its place in the
    # history but never rolls the customer, items or addresses back.
    if event.has_snapshot and (state.source_updated_at is None or event.occurred_at >= state.source_updated_at):
        state.source_updated_at = event.occurred_at
        state.snapshot = {
            "currency": event.currency,
            "amounts": event.amounts,
            "customer": event.customer,
            "items": event.items,
            "shipping_address": event.shipping_address,
            "billing_address": event.billing_address,
            "tracking": state.snapshot.get("tracking", []),
        }
    if event.tracking:
        known = {t["number"] for t in state.snapshot.get("tracking", [])}
        state.snapshot["tracking"] = state.snapshot.get("tracking", []) + [
            t for t in event.tracking if t["number"] not in known
        ]
    await conn.execute(
        """INSERT INTO order_timeline (order_id, event_id, type, occurred_at, outcome, sequence)
           VALUES (%s, %s, %s, %s, 'applied', %s)
           ON CONFLICT (order_id, event_id) DO UPDATE SET outcome = 'applied', sequence = excluded.sequence,
               detail = NULL, recorded_at = now()""",
        (state.order_id, event.event_id, event.type, event.occurred_at, state.sequence),
    )
    return Applied(event, state.sequence, status)


async def _record_unapplied(
    conn: psycopg.AsyncConnection[Any], state: OrderState, event: CanonicalEvent, verdict: tuple[str, str]
) -> None:
    outcome, detail = verdict
    await conn.execute(
        """INSERT INTO order_timeline (order_id, event_id, type, occurred_at, outcome, detail)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (order_id, event_id) DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail""",
        (state.order_id, event.event_id, event.type, event.occurred_at, outcome, detail),
    )
    if outcome == "held":
        state.held += 1
        await conn.execute(
            """INSERT INTO held_events (order_id, event_id, type, occurred_at, waits_for, event)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (order_id, event_id) DO NOTHING""",
            (state.order_id, event.event_id, event.type, event.occurred_at, detail, event_to_json(event)),
        )
    elif outcome == "conflict":
        await conn.execute(
            """INSERT INTO order_conflicts (order_id, event_id, type, reason) VALUES (%s, %s, %s, %s)
               ON CONFLICT (order_id, event_id) DO NOTHING""",
            (state.order_id, event.event_id, event.type, detail),
        )
        log.warning(
            "order event conflicts with the order's state",
            extra={"order_id": state.order_id, "event_id": event.event_id, "type": event.type, "reason": detail},
        )


async def _release_held(conn: psycopg.AsyncConnection[Any], state: OrderState) -> list[Applied]:
    """Apply held events whose prerequisites are now met, oldest first, until none is ready."""
    if state.held == 0:
        return []
    cur = await conn.execute(
        "SELECT event FROM held_events WHERE order_id = %s ORDER BY occurred_at, held_at", (state.order_id,)
    )
    held = [event_from_json(row["event"]) for row in await cur.fetchall()]
    applied: list[Applied] = []
    progress = True
    while held and progress:
        progress = False
        for event in held:
            verdict = _verdict(state, event)
            if verdict is not None and verdict[0] == "held":
                continue
            if verdict is None:
                applied.append(await _apply(conn, state, event))
            else:
                await _record_unapplied(conn, state, event, verdict)
            await conn.execute(
                "DELETE FROM held_events WHERE order_id = %s AND event_id = %s", (state.order_id, event.event_id)
            )
            held.remove(event)
            state.held -= 1
            progress = True
            break
    return applied


async def _save(conn: psycopg.AsyncConnection[Any], state: OrderState) -> None:
    await conn.execute(
        """UPDATE orders SET status = %s, created = %s, paid = %s, fulfilled = %s, cancelled = %s,
               sequence = %s, source_updated_at = %s, snapshot = %s, held = %s, updated_at = now()
           WHERE order_id = %s""",
        (
            state.status,
            state.created,
            state.paid,
            state.fulfilled,
            state.cancelled,
            state.sequence,
            state.source_updated_at,
            json.dumps(state.snapshot),
            state.held,
            state.order_id,
        ),
    )

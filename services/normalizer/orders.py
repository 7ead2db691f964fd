"""Order state in Postgres: a sequence-aware state machine.

Each event either applies (and becomes the order's next canonical event), is held until what it
depends on has applied (paid before created, fulfilled before paid), is stale (an update older
than what the order already shows), is a conflict (anything but a refund after cancellation), or
is ignored (a second order.created). Everything is written to the order's timeline; conflicts
also to ``order_conflicts`` for people to look at.

``OrderBatch`` takes a batch of events of distinct orders (the consumer runtime never has two
events of one order in flight): it locks their rows in one statement, decides in memory, and
writes the outcome with one statement per table, all in the caller's transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
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
    held: int
    # Written back only when they change; never read per event (the read and rewrite cost more than the rest).
    snapshot: dict[str, Any] | None = None
    new_tracking: list[dict[str, str | None]] = field(default_factory=list)

    def has(self, flag: str) -> bool:
        return bool(getattr(self, flag))


def event_to_json(event: CanonicalEvent) -> str:
    data = asdict(event)
    data["occurred_at"] = event.occurred_at.isoformat()
    return json.dumps(data)


def event_from_json(data: dict[str, Any]) -> CanonicalEvent:
    return CanonicalEvent(**{**data, "occurred_at": datetime.fromisoformat(data["occurred_at"])})


@dataclass
class _Writes:
    timeline: list[tuple[Any, ...]] = field(default_factory=list)
    held_added: list[tuple[Any, ...]] = field(default_factory=list)
    held_removed: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str, str, str]] = field(default_factory=list)


class OrderBatch:
    """The orders of a batch of events, locked in the caller's transaction.

    ``lock`` sends the locking statement without waiting for it, so in a pipelined transaction it
    travels with whatever the caller sends next; ``apply`` then reads the rows and applies."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], locking: psycopg.AsyncCursor[Any]) -> None:
        self.conn = conn
        self._locking = locking

    @classmethod
    async def lock(cls, conn: psycopg.AsyncConnection[Any], events: list[CanonicalEvent]) -> OrderBatch:
        # One round trip for the batch: the no-op update on conflict both locks existing rows and returns
        # them. Rows are locked in order-id order so concurrent batches cannot deadlock on each other.
        first = sorted({e.order_id: e.channel for e in events}.items())
        locking = await conn.execute(
            """INSERT INTO orders (order_id, channel)
               SELECT * FROM unnest(%s::text[], %s::text[]) ORDER BY 1
               ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
               RETURNING order_id, channel, status, created, paid, fulfilled, cancelled, sequence,
                         source_updated_at, held""",
            ([o for o, _ in first], [c for _, c in first]),
        )
        return cls(conn, locking)

    async def apply(self, events: list[CanonicalEvent]) -> dict[str, list[Applied]]:
        """Apply events of locked orders, at most one per order; per event id, the canonical events to publish."""
        if len({e.order_id for e in events}) != len(events):
            raise ValueError("apply takes at most one event per order")
        locked = {row["order_id"]: OrderState(**row) for row in await self._locking.fetchall()}
        if not events:
            return {}
        states = {e.order_id: locked[e.order_id] for e in events}
        held = await _load_held(self.conn, [s for s in states.values() if s.held])
        writes = _Writes()
        result: dict[str, list[Applied]] = {}
        for event in events:
            state = states[event.order_id]
            applied: list[Applied] = []
            verdict = _verdict(state, event)
            if verdict is None:
                applied.append(_apply(writes, state, event))
                applied += _release_held(writes, state, held.get(state.order_id, []))
            else:
                _record_unapplied(writes, state, event, verdict)
            result[event.event_id] = applied
        await _write(self.conn, writes, list(states.values()))
        return result


def _verdict(state: OrderState, event: CanonicalEvent) -> tuple[str, str] | None:
    """None: apply now. Else (outcome, detail) for the timeline."""
    if state.cancelled and event.type not in ALLOWED_AFTER_CANCELLATION:
        return "conflict", f"{event.type} after the order was cancelled"
    if event.type == "order.created" and state.created:
        return "ignored", "the order was already created"
    needed = REQUIRES[event.type]
    if needed is not None and not state.has(needed):
        return "held", needed
    # An update must be newer than what the order shows: one of the same time repeats it, an older one
    # (late, or a captured body sent again) would roll it back. Lifecycle events are not held to this:
    # a payment delivered after a later update is still the payment.
    if event.type == "order.updated" and state.source_updated_at and event.occurred_at <= state.source_updated_at:
        return (
            "stale",
            f"updated_at {event.occurred_at.isoformat()} is not newer than {state.source_updated_at.isoformat()}",
        )
    return None


async def _load_held(conn: psycopg.AsyncConnection[Any], states: list[OrderState]) -> dict[str, list[CanonicalEvent]]:
    if not states:
        return {}
    cur = await conn.execute(
        "SELECT order_id, event FROM held_events WHERE order_id = ANY(%s) ORDER BY order_id, occurred_at, held_at",
        ([s.order_id for s in states],),
    )
    held: dict[str, list[CanonicalEvent]] = {}
    for row in await cur.fetchall():
        held.setdefault(row["order_id"], []).append(event_from_json(row["event"]))
    return held


def _apply(writes: _Writes, state: OrderState, event: CanonicalEvent) -> Applied:
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
        }
    state.new_tracking += event.tracking
    writes.timeline.append(_timeline_row(state, event, "applied", state.sequence, None))
    return Applied(event, state.sequence, status)


def _record_unapplied(writes: _Writes, state: OrderState, event: CanonicalEvent, verdict: tuple[str, str]) -> None:
    outcome, detail = verdict
    writes.timeline.append(_timeline_row(state, event, outcome, None, detail))
    if outcome == "held":
        state.held += 1
        writes.held_added.append(
            (state.order_id, event.event_id, event.type, event.occurred_at, detail, event_to_json(event))
        )
    elif outcome == "conflict":
        writes.conflicts.append((state.order_id, event.event_id, event.type, detail))
        log.warning(
            "order event conflicts with the order's state",
            extra={"order_id": state.order_id, "event_id": event.event_id, "type": event.type, "reason": detail},
        )


def _release_held(writes: _Writes, state: OrderState, held: list[CanonicalEvent]) -> list[Applied]:
    """Apply held events whose prerequisites are now met, oldest first, until none is ready."""
    applied: list[Applied] = []
    progress = True
    while held and progress:
        progress = False
        for event in held:
            verdict = _verdict(state, event)
            if verdict is not None and verdict[0] == "held":
                continue
            if verdict is None:
                applied.append(_apply(writes, state, event))
            else:
                _record_unapplied(writes, state, event, verdict)
            writes.held_removed.append((state.order_id, event.event_id))
            held.remove(event)
            state.held -= 1
            progress = True
            break
    return applied


def _timeline_row(
    state: OrderState, event: CanonicalEvent, outcome: str, sequence: int | None, detail: str | None
) -> tuple[Any, ...]:
    received_at = datetime.fromtimestamp(event.received_at_ms / 1000, UTC)
    return (
        state.order_id,
        event.event_id,
        event.type,
        event.occurred_at,
        outcome,
        sequence,
        detail,
        event.channel,
        received_at,
    )


async def _write(conn: psycopg.AsyncConnection[Any], writes: _Writes, states: list[OrderState]) -> None:
    async with conn.cursor() as cur:
        # The timeline keeps the last outcome per event: a held event that applies later says so.
        await _execute_rows(
            cur,
            """INSERT INTO order_timeline
                   (order_id, event_id, type, occurred_at, outcome, sequence, detail, channel, received_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (order_id, event_id) DO UPDATE SET outcome = excluded.outcome,
                   sequence = excluded.sequence, detail = excluded.detail, recorded_at = now()""",
            writes.timeline,
        )
        await _execute_rows(
            cur,
            """INSERT INTO held_events (order_id, event_id, type, occurred_at, waits_for, event)
                   VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (order_id, event_id) DO NOTHING""",
            writes.held_added,
        )
        await _execute_rows(cur, "DELETE FROM held_events WHERE order_id = %s AND event_id = %s", writes.held_removed)
        await _execute_rows(
            cur,
            """INSERT INTO order_conflicts (order_id, event_id, type, reason) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (order_id, event_id) DO NOTHING""",
            writes.conflicts,
        )
        await _execute_rows(
            cur,
            """UPDATE orders SET status = %s, created = %s, paid = %s, fulfilled = %s, cancelled = %s,
                   sequence = %s, source_updated_at = %s, snapshot = coalesce(%s::jsonb, snapshot),
                   tracking = CASE WHEN %s::jsonb = '[]'::jsonb THEN tracking ELSE (
                       SELECT jsonb_agg(t) FROM (
                           SELECT DISTINCT ON (t->>'number') t FROM jsonb_array_elements(tracking || %s::jsonb) AS x(t)
                       ) AS distinct_numbers) END,
                   held = %s, updated_at = now()
               WHERE order_id = %s""",
            [
                (
                    s.status,
                    s.created,
                    s.paid,
                    s.fulfilled,
                    s.cancelled,
                    s.sequence,
                    s.source_updated_at,
                    None if s.snapshot is None else json.dumps(s.snapshot),
                    json.dumps(s.new_tracking),
                    json.dumps(s.new_tracking),
                    s.held,
                    s.order_id,
                )
                for s in states
            ],
        )


async def _execute_rows(cur: psycopg.AsyncCursor[Any], query: str, rows: list[Any]) -> None:
    """``executemany``, but a batch of one (the common case at moderate rates) as a plain execute:
    psycopg's executemany enters and leaves pipeline mode, which costs more than the statement."""
    if len(rows) == 1:
        await cur.execute(query, rows[0])
    elif rows:
        await cur.executemany(query, rows)

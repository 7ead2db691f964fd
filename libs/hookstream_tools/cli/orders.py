"""``hookstream orders``: held orders, and an operator's release or cancellation of one."""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

import click
from hookstream.settings import StackSettings

from hookstream_tools.cli.audit import Note, audited
from hookstream_tools.cli.common import Group, out, require_migrated


@click.group(cls=Group)
def orders() -> None:
    """Orders the risk rules held: list them, release or cancel one."""


def _where(service: str, topic: str | None) -> Any:
    from hookstream.store.risk import VerdictTopic

    return VerdictTopic(service, topic) if topic else VerdictTopic(service)


async def _with_store(service: str, topic: str | None, work: Any) -> Any:
    from hookstream.db import Database
    from hookstream.store.risk import RiskStore

    stack = StackSettings()
    await require_migrated(stack.require_database())
    async with Database(stack.require_database()) as db:
        return await work(RiskStore(db, _where(service, topic)))


_service = click.option(
    "--service", default="risk", show_default=True, help="the risk service whose outbox publishes it"
)
_topic = click.option("--topic", default=None, help="the verdict topic [default orders.risk.v1]")


@orders.command("held")
@_service
@_topic
def orders_held(service: str, topic: str | None) -> None:
    """Every order waiting for an operator, oldest first, with its score and reasons."""
    held = asyncio.run(_with_store(service, topic, lambda store: store.held()))
    if not held:
        out.print("No orders are held.")
    for a in held:
        out.print(f"{a.order_id}  score {a.score}  held since {a.decided_at:%Y-%m-%d %H:%M} UTC  {a.email or ''}")
        for reason in a.reasons:
            out.print(f"    - {reason}", markup=False)


def _decide(order_id: str, verdict: str, by: str | None, service: str, topic: str | None) -> None:
    from hookstream.store.risk import RiskStore

    who = by or getpass.getuser()

    async def decide(store: Any, note: Note) -> Any:
        decided = await store.decide(order_id, verdict, who)
        await note(f"order.risk_{verdict}", order_id, {"verdict": "held"}, {"verdict": verdict, "by": who})
        return decided

    decided = audited(lambda db: RiskStore(db, _where(service, topic)), decide)
    follow = "fulfillment may start" if verdict == "released" else "fulfillment will not start"
    out.print(f"{decided.order_id} {verdict} by {who}; {follow} once `hookstream run {service}` publishes it.")


@orders.command("release")
@click.argument("order_id")
@click.option("--by", default=None, help="who decided [default: your user name]")
@_service
@_topic
def orders_release(order_id: str, by: str | None, service: str, topic: str | None) -> None:
    """Release a held order: its fulfillment goes ahead."""
    _decide(order_id, "released", by, service, topic)


@orders.command("cancel")
@click.argument("order_id")
@click.option("--by", default=None, help="who decided [default: your user name]")
@_service
@_topic
def orders_cancel(order_id: str, by: str | None, service: str, topic: str | None) -> None:
    """Cancel a held order: it is never fulfilled."""
    _decide(order_id, "cancelled", by, service, topic)

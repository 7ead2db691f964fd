"""``hookstream dlq``: the dead letters of every registered consumer, listed and sent back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
from hookstream.settings import StackSettings
from hookstream_schemas.topics import dlq_topic

from hookstream_tools.cli.audit import record
from hookstream_tools.cli.common import Group, err, out, require_migrated


@click.group(cls=Group)
def dlq() -> None:
    """Dead letters of a consumer service: list them, send them back (`hookstream dlq queues` names them)."""


def queues() -> dict[str, str]:
    """Every registered consumer's dead-letter topic, by consumer name (``delivery-send``, ``normalizer``…)."""
    from hookstream import registry

    stack = StackSettings()
    found = registry.consumers(stack.kafka_bootstrap_servers or "", stack.database_url or "")
    return {name: group.dlq_topic for name, group in found.items()}


def _dlq_letters(service: str, topic: str | None) -> list[Any]:
    from hookstream.consumer.dlq import list_dead_letters
    from hookstream.db import Database

    # A consumer outside the registry (a test, a script on the runtime) has the conventional topic.
    topic = topic or queues().get(service) or dlq_topic(service)
    stack = StackSettings()
    bootstrap, database_url = stack.kafka_connection(), stack.require_database()

    async def read() -> list[Any]:
        await require_migrated(database_url)
        async with Database(database_url) as db:
            return await list_dead_letters(bootstrap, db, service, topic)

    return asyncio.run(read())


@dlq.command("queues")
def dlq_queues() -> None:
    """Every consumer's dead-letter topic, from the service registry."""
    for consumer, topic in sorted(queues().items()):
        out.print(f"{consumer:<24} {topic}", markup=False)


@dlq.command("list")
@click.argument("service")
@click.option("--topic", help="the dead-letter topic, if not the service's own")
@click.option("--all", "show_all", is_flag=True, help="also show dead letters already redriven")
def dlq_list(service: str, topic: str | None, show_all: bool) -> None:
    """What sits in SERVICE's dead-letter topic and why."""
    from rich.table import Table

    letters = _dlq_letters(service, topic)
    shown = [d for d in letters if show_all or not d.redriven]
    if not shown:
        out.print(f"No dead letters waiting for {service} ({len(letters)} redriven before).")
        return
    table = Table("position", "event id", "key", "attempts", "first failed", "reason", "from", box=None)
    for d in shown:
        failed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.first_failed_at_ms / 1000))
        reason = d.reason if not d.redriven else f"{d.reason} [dim](redriven)[/]"
        table.add_row(d.position, d.event_id, d.key or "-", str(d.attempts), failed, reason, d.origin)
    out.print(table)
    out.print(f"{len(shown)} dead letter(s). Send back: hookstream dlq redrive {service} --position P:O | --all")


@dlq.command("redrive")
@click.argument("service")
@click.option("--position", "positions", multiple=True, help="PARTITION:OFFSET of one dead letter (repeatable)")
@click.option("--event-id", "event_ids", multiple=True, help="event id of a dead letter (repeatable)")
@click.option("--all", "everything", is_flag=True, help="every dead letter not redriven yet")
@click.option("--again", is_flag=True, help="include dead letters that were redriven before")
@click.option("--topic", help="the dead-letter topic, if not the service's own")
def dlq_redrive(
    service: str,
    positions: tuple[str, ...],
    event_ids: tuple[str, ...],
    everything: bool,
    again: bool,
    topic: str | None,
) -> None:
    """Send dead letters back to SERVICE's input; idempotent handlers make a second delivery harmless."""
    from hookstream.consumer.dlq import redrive, select
    from hookstream.db import Database
    from hookstream.kafka import Producer

    letters = _dlq_letters(service, topic)
    chosen = select(letters, positions=positions, event_ids=event_ids, everything=everything, include_redriven=again)
    if not chosen:
        out.print("Nothing to redrive: every selected dead letter was redriven before (use --again to resend).")
        return
    stack = StackSettings()

    async def send() -> int:
        from rich.progress import Progress

        async with Database(stack.require_database()) as db, Producer(stack.kafka_connection()) as producer:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task(f"redriving to {service}", total=len(chosen))
                return await redrive(producer, db, service, chosen, on_progress=lambda d: progress.advance(task))

    sent = asyncio.run(send())
    record("dead_letters.redrive", service, {"redriven": [d.position for d in chosen]})
    out.print(f"Redrove {sent} dead letter(s) to hookstream.{service}.redrive; {service} processes them next.")

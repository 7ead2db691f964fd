"""``hookstream deliveries``: send one delivery again, or recover an endpoint's failures."""

from __future__ import annotations

import asyncio
from typing import Any

import click
from hookstream.settings import StackSettings

from hookstream_tools.cli.common import Group, err, out, require_migrated


@click.group(cls=Group)
def deliveries() -> None:
    """Outbound deliveries: send one again, or recover an endpoint's failures."""


def _resend(**selection: Any) -> int:
    from hookstream.db import Database
    from hookstream.kafka import Producer
    from hookstream.store.deliveries import resend
    from rich.progress import Progress

    stack = StackSettings()

    async def run() -> int:
        await require_migrated(stack.require_database())
        async with Database(stack.require_database()) as db, Producer(stack.kafka_connection()) as producer:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("queueing deliveries", total=None)
                return await resend(db, producer, on_progress=lambda row: progress.advance(task), **selection)

    return asyncio.run(run())


@deliveries.command("retry")
@click.argument("delivery_id")
def deliveries_retry(delivery_id: str) -> None:
    """Send one delivery again (a failed or skipped one, or one still retrying)."""
    _resend(delivery=delivery_id)
    out.print(f"{delivery_id} queued again; `hookstream run delivery` sends it next.")


@deliveries.command("recover")
@click.argument("subscription_id")
@click.option("--since", required=True, type=click.DateTime(), help="failed deliveries created since (UTC)")
@click.option("--include-skipped", is_flag=True, help="also those skipped while the endpoint was disabled")
def deliveries_recover(subscription_id: str, since: Any, include_skipped: bool) -> None:
    """Send again every failed delivery of an endpoint since a time, in their original order."""
    from datetime import UTC

    count = _resend(subscription_id=subscription_id, since=since.replace(tzinfo=UTC), include_skipped=include_skipped)
    what = "failed and skipped" if include_skipped else "failed"
    out.print(f"{count} {what} deliveries of {subscription_id} queued again, oldest first.")

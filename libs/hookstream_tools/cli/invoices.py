"""``hookstream invoices``: an order's invoices and credit notes, and one document as a PDF file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from hookstream.errors import ConfigurationError
from hookstream.settings import StackSettings

from hookstream_tools.cli.common import Group, out, require_migrated


@click.group(cls=Group)
def invoices() -> None:
    """Invoices and credit notes the fulfillment workflow issued."""


async def _with_store(work: Any) -> Any:
    from hookstream.db import Database
    from hookstream.store.invoices import InvoiceStore

    stack = StackSettings()
    await require_migrated(stack.require_database())
    async with Database(stack.require_database()) as db:
        return await work(InvoiceStore(db))


@invoices.command("list")
@click.argument("order_id")
def invoices_list(order_id: str) -> None:
    """The documents of one order, oldest first."""
    found = asyncio.run(_with_store(lambda store: store.for_order(order_id)))
    if not found:
        out.print(f"No invoice or credit note for {order_id}.")
    for i in found:
        out.print(f"{i.number}  {i.kind:<11}  {i.total or ''} {i.currency or ''}  {i.created_at:%Y-%m-%d %H:%M} UTC")


@invoices.command("get")
@click.argument("number")
@click.option("--out", "path", type=click.Path(dir_okay=False, path_type=Path), help="file [default: <NUMBER>.pdf]")
def invoices_get(number: str, path: Path | None) -> None:
    """Write one document to a PDF file."""
    found = asyncio.run(_with_store(lambda store: store.get(number)))
    if found is None:
        raise ConfigurationError(
            f"no invoice or credit note numbered {number}: `hookstream invoices list ORDER` shows them"
        )
    target = path or Path(f"{number}.pdf")
    target.write_bytes(found.pdf)
    out.print(f"{number} ({found.kind} of {found.order_id}) written to {target} ({len(found.pdf)} bytes)")

"""Invoices and credit notes: numbered without gaps per shop and kind, stored as PDF, retrievable.

``issue`` takes the shop's next number and stores the document in the caller's transaction (the
workflow's), so the number and the document commit together or not at all; an order has at most
one document of each kind, and issuing it again returns the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from hookstream.db import Database

PREFIX = {"invoice": "INV", "credit_note": "CN"}


@dataclass(frozen=True)
class Invoice:
    number: str
    shop: str
    kind: str
    order_id: str
    total: str | None
    currency: str | None
    pdf: bytes
    created_at: datetime


async def issue(
    conn: psycopg.AsyncConnection[Any],
    *,
    shop: str,
    kind: str,
    order_id: str,
    total: str | None,
    currency: str | None,
    render: Callable[[str], bytes],
) -> tuple[Invoice, bool]:
    """The order's document of this kind, issued now with the next number (True) or found (False)."""
    cur = await conn.execute(
        "INSERT INTO invoice_counters (shop, kind) VALUES (%s, %s) ON CONFLICT DO NOTHING", (shop, kind)
    )
    # The counter row's lock orders concurrent issues of one shop; the existence check runs under it.
    cur = await conn.execute("SELECT next FROM invoice_counters WHERE shop = %s AND kind = %s FOR UPDATE", (shop, kind))
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(_SELECT + " WHERE order_id = %s AND kind = %s", (order_id, kind))
    existing = await cur.fetchone()
    if existing is not None:
        return Invoice(**existing), False
    number = f"{PREFIX[kind]}-{shop.upper()}-{int(row['next']):06d}"
    pdf = render(number)
    await conn.execute("UPDATE invoice_counters SET next = next + 1 WHERE shop = %s AND kind = %s", (shop, kind))
    cur = await conn.execute(_INSERT, (number, shop, kind, order_id, total, currency, pdf))
    created = await cur.fetchone()
    assert created is not None
    return Invoice(**created), True


_FIELDS = "number, shop, kind, order_id, total, currency, pdf, created_at"
_SELECT = f"SELECT {_FIELDS} FROM invoices"  # noqa: S608 - fixed columns
_INSERT = f"""INSERT INTO invoices (number, shop, kind, order_id, total, currency, pdf)
              VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_FIELDS}"""  # noqa: S608 - fixed columns


class InvoiceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, number: str) -> Invoice | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE number = %s", (number,))
            row = await cur.fetchone()
        return Invoice(**row) if row else None  # type: ignore[arg-type]

    async def for_order(self, order_id: str) -> list[Invoice]:
        async with self.db.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE order_id = %s ORDER BY created_at", (order_id,))
            return [Invoice(**row) for row in await cur.fetchall()]  # type: ignore[arg-type]

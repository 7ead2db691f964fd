# mypy: disallow-untyped-calls=False
# (fpdf2's methods come through an untyped decorator)
"""Invoice and credit-note PDFs (fpdf2): seller, customer, lines, totals.

The core PDF fonts cover Latin-1 only; other characters are reduced to their closest Latin-1 form
(accents dropped by NFKD) or '?', unless ``font_path`` names a Unicode TTF font to embed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fpdf import FPDF

TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}
_PUNCTUATION = {
    "\u2013": "-",
    "\u2014": "-",
    "\u20ac": "EUR",
    "\u201c": '"',
    "\u201d": '"',
    "\u2018": "'",
    "\u2019": "'",
}


@dataclass(frozen=True)
class Seller:
    name: str
    address: str = ""


def latin1(text: str) -> str:
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            folded = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(folded or _PUNCTUATION.get(ch, "?"))
    return "".join(out)


def render(
    kind: str,
    number: str,
    order: dict[str, Any],
    *,
    seller: Seller,
    issued_at: datetime,
    font_path: str | None = None,
) -> bytes:
    """``order``: ``order_id``, ``currency``, ``amounts``, ``items``, ``customer``, ``billing_address``."""
    pdf = FPDF()
    pdf.set_title(f"{TITLES[kind]} {number}")
    pdf.set_creator("hookstream")
    pdf.set_creation_date(issued_at)
    if font_path:
        pdf.add_font("doc", "", font_path)
        family, text = "doc", (lambda s: s)
    else:
        family, text = "helvetica", latin1
    pdf.add_page()
    pdf.set_font(family, size=18)
    pdf.cell(0, 10, text(f"{TITLES[kind]} {number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=10)
    pdf.cell(0, 6, text(f"{seller.name}  {seller.address}".strip()), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 6, text(f"Date: {issued_at:%Y-%m-%d}   Order: {order['order_id']}"), new_x="LMARGIN", new_y="NEXT")
    customer = order.get("customer") or {}
    billing = order.get("billing_address") or {}
    to = ", ".join(
        str(v)
        for v in (
            customer.get("name") or billing.get("name"),
            customer.get("email"),
            billing.get("line1"),
            billing.get("city"),
            billing.get("country"),
        )
        if v
    )
    pdf.cell(0, 6, text(f"Bill to: {to}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    currency = order.get("currency") or ""
    widths = (95, 20, 35, 35)
    pdf.set_font(family, size=10)
    for label, width in zip(("Item", "Qty", "Unit price", "Amount"), widths, strict=True):
        pdf.cell(width, 7, label, border="B")
    pdf.ln()
    for item in order.get("items") or []:
        quantity = int(item.get("quantity") or 0)
        unit = item.get("unit_price")
        amount = _times(unit, quantity)
        cells = (
            item.get("title") or item.get("sku") or "item",
            str(quantity),
            f"{unit or ''} {currency}",
            f"{amount} {currency}" if amount else "",
        )
        for value, width in zip(cells, widths, strict=True):
            pdf.cell(width, 7, text(str(value)))
        pdf.ln()
    amounts = order.get("amounts") or {}
    pdf.ln(2)
    for label, key in (("Subtotal", "subtotal"), ("Shipping", "shipping"), ("Tax", "tax"), ("Discount", "discount")):
        if amounts.get(key):
            pdf.cell(150, 6, label, align="R")
            pdf.cell(35, 6, text(f"{amounts[key]} {currency}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=12)
    sign = "-" if kind == "credit_note" else ""
    pdf.cell(150, 8, "Total", align="R")
    pdf.cell(35, 8, text(f"{sign}{amounts.get('total') or ''} {currency}"), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _times(unit: str | None, quantity: int) -> str:
    from decimal import Decimal, InvalidOperation

    try:
        return f"{Decimal(unit or '') * quantity:.2f}"
    except InvalidOperation:
        return ""

"""The risk rules: a score from 0 to 100 per order, and the words for why."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class Rules:
    hold_at: int = 60  # an order scoring this or more is held for an operator
    amount_threshold: Decimal = Decimal("1000")
    velocity_window_hours: int = 24
    velocity_orders: int = 3  # this many orders by one email within the window (this one included)
    first_time_total: Decimal = Decimal("300")
    weights: tuple[tuple[str, int], ...] = (("amount", 40), ("country", 30), ("velocity", 30), ("first_time", 25))

    def weight(self, rule: str) -> int:
        return dict(self.weights)[rule]


@dataclass(frozen=True)
class History:
    """The customer's other orders: within the velocity window, and at all."""

    recent: int
    earlier: int


def total_of(event: dict[str, Any]) -> Decimal:
    try:
        return Decimal((event.get("amounts") or {}).get("total") or "0")
    except InvalidOperation:
        return Decimal(0)


def score(event: dict[str, Any], history: History, rules: Rules) -> tuple[int, list[str]]:
    total = total_of(event)
    currency = event.get("currency") or ""
    reasons: list[tuple[str, str]] = []
    if total >= rules.amount_threshold:
        reasons.append(("amount", f"total {total} {currency} is at or over {rules.amount_threshold}"))
    billing = (event.get("billing_address") or {}).get("country")
    shipping = (event.get("shipping_address") or {}).get("country")
    if billing and shipping and billing.upper() != shipping.upper():
        reasons.append(("country", f"billing country {billing} differs from shipping country {shipping}"))
    if history.recent + 1 >= rules.velocity_orders:
        reasons.append(
            (
                "velocity",
                f"{history.recent + 1} orders from this email within {rules.velocity_window_hours} h",
            )
        )
    if history.earlier == 0 and total >= rules.first_time_total:
        reasons.append(("first_time", f"first order from this email, total {total} {currency}"))
    points = min(100, sum(rules.weight(rule) for rule, _ in reasons))
    return points, [text for _, text in reasons]

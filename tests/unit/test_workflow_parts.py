"""Workflow parts that need no servers: the risk rules and the invoice's text folding."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hookstream.consumer import Record
from hookstream.kafka.headers import EVENT_TYPE
from hookstream.workflow import of_types
from hookstream_services.fulfillment.documents import latin1
from hookstream_services.risk.rules import History, Rules, score


def event(total: str, billing: str | None = "DE", shipping: str | None = "DE") -> dict[str, Any]:
    return {
        "amounts": {"total": total},
        "currency": "EUR",
        "billing_address": {"country": billing} if billing else None,
        "shipping_address": {"country": shipping} if shipping else None,
    }


def test_each_rule_adds_its_weight_and_says_why() -> None:
    rules = Rules()
    assert score(event("50"), History(recent=0, earlier=3), rules) == (0, [])
    assert score(event("1000"), History(0, 3), rules) == (40, ["total 1000 EUR is at or over 1000"])
    assert score(event("50", "de", "FR"), History(0, 3), rules)[0] == 30
    assert score(event("50", None, "FR"), History(0, 3), rules)[0] == 0  # nothing to compare
    assert score(event("50"), History(recent=2, earlier=2), rules) == (30, ["3 orders from this email within 24 h"])
    assert score(event("300"), History(0, 0), rules) == (25, ["first order from this email, total 300 EUR"])
    points, reasons = score(event("5000", "DE", "US"), History(recent=5, earlier=0), rules)
    assert points == 100  # 40 + 30 + 30 + 25, capped
    assert len(reasons) == 4


def test_thresholds_are_settings_and_a_bad_total_scores_as_zero() -> None:
    rules = Rules(amount_threshold=Decimal("100"), first_time_total=Decimal("1000000"))
    assert score(event("150"), History(0, 1), rules)[0] == 40
    assert score(event("not money"), History(0, 0), Rules())[0] == 0


def test_invoice_text_keeps_latin1_and_folds_the_rest() -> None:
    assert latin1("Mug \u00d6lm\u00fchle \u00d7 2") == "Mug \u00d6lm\u00fchle \u00d7 2"
    assert latin1("Tea \u2013 green \u201cbest\u201d \u20ac") == 'Tea - green "best" EUR'
    assert latin1("\u0141\u00f3d\u017a") == "?\u00f3dz"  # ź loses its accent (NFKD); Ł has none to lose
    assert latin1("茶") == "?"


async def test_a_workflow_skips_types_it_does_not_act_on_without_decoding_them() -> None:
    seen: list[bytes | None] = []

    async def handler(record: Record) -> None:
        seen.append(record.value)

    handle = of_types({"order.created"}, handler)
    undecodable = b"\xff not avro"
    await handle(Record("orders.events.v1", 0, 1, "shopify:1", undecodable, [(EVENT_TYPE, b"order.updated")]))
    assert seen == []  # another type: done, never decoded
    await handle(Record("orders.events.v1", 0, 2, "shopify:1", b"created", [(EVENT_TYPE, b"order.created")]))
    await handle(Record("orders.events.v1", 0, 3, "shopify:1", b"no header"))  # written before the header existed
    assert seen == [b"created", b"no header"]

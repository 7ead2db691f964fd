"""The XML payload is well-formed XML 1.0 whatever a customer typed: characters XML cannot carry become
U+FFFD, keys that are not XML names become names, and ordinary text comes back unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from hookstream.http.outbound.payload import render

BAD = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"]
ORDINARY = "Ana & <Co> \"q\" 'a' ]]> tab\there line\nbreak é 中文 😀 \x7f \x85 \ue000 \ufffd \U0010ffff"


def parsers() -> list[Any]:
    found = [pytest.param(ET.fromstring, id="etree")]  # our own output
    try:
        from defusedxml.ElementTree import fromstring
    except ImportError:  # the careful parser a partner may use, when installed
        return found
    return [*found, pytest.param(fromstring, id="defusedxml")]


def event(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt{text}",
        "order_id": "shopify:1",
        "type": "order.created",
        "occurred_at": datetime(2026, 11, 20, 10, 15, 4, tzinfo=UTC),
        "customer": {"name": f"Ana{text}Silva", "email": None, "company": text},
        "items": [{"sku": f"A{text}", "title": text, "quantity": 1}],
        "tracking": [{"number": text}],
        "shipping_address": {"line1": f"Rua {text}"},
        **extra,
    }


@pytest.mark.parametrize("parse", parsers())
@pytest.mark.parametrize("bad", BAD, ids=[f"U+{ord(c):04X}" for c in BAD])
def test_characters_xml_cannot_carry_become_replacement_characters(
    bad: str, parse: Callable[[bytes], ET.Element]
) -> None:
    root = parse(render(event(bad), "xml")[0])
    assert root.findtext("customer/name") == "Ana\ufffdSilva"
    assert root.findtext("customer/company") == "\ufffd"
    assert root.findtext("items/item/sku") == "A\ufffd"
    assert root.findtext("items/item/title") == "\ufffd"
    assert root.findtext("tracking/tracking_number/number") == "\ufffd"
    assert root.findtext("shipping_address/line1") == "Rua \ufffd"
    assert root.findtext("event_id") == "evt\ufffd"


@pytest.mark.parametrize("parse", parsers())
def test_ordinary_text_round_trips_unchanged(parse: Callable[[bytes], ET.Element]) -> None:
    root = parse(render(event(ORDINARY), "xml")[0])
    assert root.findtext("customer/name") == f"Ana{ORDINARY}Silva"
    assert root.findtext("items/item/title") == ORDINARY
    assert root.findtext("occurred_at") == "2026-11-20T10:15:04.000Z"


@pytest.mark.parametrize("parse", parsers())
def test_keys_that_are_not_xml_names_still_make_well_formed_xml(parse: Callable[[bytes], ET.Element]) -> None:
    odd = {"first name": "a", "1st": "b", "a:b": "c", "{urn:x}tag": "d", "": "e", "é\x00<": "f", "ok_name-1.2": "g"}
    extra = parse(render(event("", extra=odd), "xml")[0]).find("extra")
    assert extra is not None
    assert [(child.tag, child.text) for child in extra] == [
        ("first_name", "a"),
        ("_1st", "b"),
        ("a_b", "c"),
        ("_urn_x_tag", "d"),
        ("_", "e"),
        ("___", "f"),
        ("ok_name-1.2", "g"),
    ]

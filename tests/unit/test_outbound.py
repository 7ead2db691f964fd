"""Subscription rules, the SSRF guard and payload rendering, without servers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest
from hookstream.http.outbound.payload import render
from hookstream.http.outbound.ssrf import UnsafeTarget, check_addresses, resolve_safe
from hookstream.signatures import standard_headers
from hookstream.store.subscriptions import InvalidSubscription, Secret, Subscription, matches, new_secret, validate
from standardwebhooks import Webhook


def test_event_type_patterns() -> None:
    assert matches("order.*", "order.paid")
    assert matches("*", "order.refunded")
    assert matches("order.paid", "order.paid")
    assert not matches("order.paid", "order.payment_failed")
    assert not matches("order.*", "orders.paid")


def test_settings_are_validated_with_the_fix_in_the_message() -> None:
    ok = {"url": "https://partner.example/hooks", "event_types": ["order.*"]}
    validate(**ok)  # type: ignore[arg-type]
    cases = [
        ({"url": "ftp://x"}, "absolute http"),
        ({"event_types": []}, "at least one event type"),
        ({"event_types": ["Order Paid"]}, "not like order.paid"),
        ({"content_type": "yaml"}, "json or xml"),
        ({"headers": {"Webhook-Signature": "x"}}, "cannot be overridden"),
        ({"timeout_ms": 5}, "between 100 and 60000"),
        ({"rate_limit_per_s": 0}, "between 0.01 and 100000"),
        ({"rate_limit_per_s": 5e-324}, "between 0.01 and 100000"),  # underflowed the real column: a 500 once
        ({"url": "https://_o]x.example/"}, "is not a URL"),  # urlsplit's ValueError: a 500 once
        ({"url": "https://a.example/\x00"}, "control characters"),
        ({"headers": {"X Bad": "v"}}, "not an HTTP token"),
        ({"headers": {"X-Ok": "line\nbreak"}}, "printable ASCII"),
    ]
    for change, message in cases:
        with pytest.raises(InvalidSubscription, match=message):
            validate(**{**ok, **change})  # type: ignore[arg-type]


def test_rotation_signs_with_both_secrets_until_the_old_one_expires() -> None:
    now = datetime.now(UTC)
    old, fresh = new_secret(), new_secret()
    sub = Subscription(
        "sub_1",
        "p",
        "https://p.example",
        ["*"],
        [Secret(old, now - timedelta(days=3), now + timedelta(hours=1)), Secret(fresh, now)],
    )
    assert sub.signing_secrets(now) == [fresh, old]
    assert sub.signing_secrets(now + timedelta(hours=2)) == [fresh]
    body = b'{"type":"order.paid"}'
    headers = standard_headers(sub.signing_secrets(now), "evt_1", int(now.timestamp()), body)
    for secret in (old, fresh):  # a partner on either secret verifies, with the official library
        assert Webhook(secret).verify(body, headers) == {"type": "order.paid"}


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.10.10", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "reserved"),  # noqa: S104 - an address to refuse, not to bind
    ],
)
def test_ssrf_guard_refuses_internal_addresses(address: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget, match=f"resolves to .* \\({reason} address\\): refused to prevent SSRF"):
        check_addresses("partner.example", [address])


def test_ssrf_guard_allows_public_and_explicitly_allowed_addresses() -> None:
    assert check_addresses("partner.example", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    assert check_addresses("localhost", ["127.0.0.1"], allow=frozenset({"loopback"})) == ["127.0.0.1"]


async def test_ssrf_guard_resolves_names_before_judging() -> None:
    with pytest.raises(UnsafeTarget, match="localhost resolves to"):
        await resolve_safe("http://localhost:8080/hook")
    assert "127.0.0.1" in await resolve_safe("http://localhost:8080/hook", allow=frozenset({"loopback"}))
    with pytest.raises(UnsafeTarget, match="not an absolute"):
        await resolve_safe("/relative")


EVENT = {
    "event_id": "evt_1",
    "order_id": "shopify:1",
    "sequence": 2,
    "type": "order.paid",
    "occurred_at": datetime(2026, 11, 20, 10, 15, 4, tzinfo=UTC),
    "currency": "EUR",
    "amounts": {"total": "63.71", "tax": None},
    "customer": {"name": "Ana & <Co>", "email": None},
    "items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}],
    "tracking": [],
    "shipping_address": None,
}


def test_json_and_xml_carry_the_same_fields_byte_for_byte_stable() -> None:
    body, content_type = render(EVENT, "json")
    assert content_type == "application/json"
    assert json.loads(body)["occurred_at"] == "2026-11-20T10:15:04.000Z"
    xml, xml_type = render(EVENT, "xml")
    assert xml_type == "application/xml"
    assert render(EVENT, "xml")[0] == xml  # deterministic
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    assert root.tag == "event"
    assert root.findtext("amounts/total") == "63.71"
    assert root.find("amounts/tax") is None  # nulls are left out
    assert root.findtext("customer/name") == "Ana & <Co>"  # escaped on the wire, intact when parsed
    assert [i.findtext("sku") for i in root.findall("items/item")] == ["A", "B"]
    assert root.findtext("occurred_at") == "2026-11-20T10:15:04.000Z"

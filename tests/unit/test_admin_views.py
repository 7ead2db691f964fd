"""What the admin shows back never carries a secret. A read token listing the normalizer's dead letters
sees each raw webhook, but never its signature:
a signed body with its signature is a webhook anyone could send again."""

from __future__ import annotations

import base64
import logging

import pytest
from hookstream.consumer.dlq import DeadLetter
from hookstream.sensors import Sensor
from hookstream.store.subscriptions import Subscription
from hookstream_services.admin.auth import Refusals
from hookstream_services.admin.views import letter
from starlette.requests import Request

from tests.normalizer_helpers import RAW, envelope
from tests.signing import load_sample, sign


def _dead_raw_webhook() -> tuple[DeadLetter, str]:
    headers, body = load_sample("shopify_orders_create")
    signed = {k.lower(): v for k, v in sign("shopify", headers, body).items()}
    raw = envelope("shopify_orders_create") | {"headers": signed, "body": body}
    value = RAW.encode(raw)
    return DeadLetter("webhooks.raw.v1.dlq", 0, 7, "shopify:1", value, list(RAW.headers), 0), signed[
        "x-shopify-hmac-sha256"
    ]


def _shown(view: dict[str, object]) -> dict[str, object]:
    payload = str(view["payload"])
    value = base64.b64decode(payload) if view["payload_encoding"] == "base64" else payload.encode()
    return RAW.decode(value, list(RAW.headers))


def test_below_admin_a_raw_webhook_is_shown_without_its_signature() -> None:
    dead, signature = _dead_raw_webhook()
    shown = _shown(letter(dead))
    assert signature not in str(letter(dead))
    assert shown["headers"]["x-shopify-hmac-sha256"] == "(redacted)"
    assert shown["headers"]["x-shopify-topic"] == "orders/create"  # the rest stays, for the diagnosis
    assert shown["body"] == RAW.decode(dead.value or b"", dead.headers)["body"]


def test_an_admin_sees_the_envelope_as_it_was() -> None:
    dead, signature = _dead_raw_webhook()
    assert _shown(letter(dead, signatures=True))["headers"]["x-shopify-hmac-sha256"] == signature


def test_a_letter_that_is_no_raw_webhook_is_shown_unchanged() -> None:
    dead = DeadLetter("hookstream.crm.dlq", 0, 1, "k", b"\xff\x01not avro", [], 0)
    assert base64.b64decode(str(letter(dead)["payload"])) == b"\xff\x01not avro"


def test_a_subscription_is_shown_and_audited_without_credentials() -> None:
    """Custom headers are often the partner's Authorization; a URL may carry userinfo or a token."""
    sub = Subscription(
        id="sub_1",
        name="erp",
        url="https://erp:pa55@erp.example/hooks?api_key=k-123",
        event_types=["order.*"],
        secrets=[],
        headers={"Authorization": "Bearer partner-key"},
    )
    shown = sub.shown()
    assert shown["headers"] == {"Authorization": "***"}
    assert shown["url"] == "https://erp.example/hooks?api_key=***"
    assert "pa55" not in str(shown)
    assert "partner-key" not in str(shown)
    assert "k-123" not in str(shown)


def test_refused_tokens_are_all_counted_and_logged_once_a_minute_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[tuple[str, str]] = []

    class Counting(Sensor):
        def on_auth_refused(self, service: str, reason: str) -> None:
            counted.append((service, reason))

    now = [0.0]
    refusals = Refusals(Counting(), window_s=60, clock=lambda: now[0])
    request = Request(
        {"type": "http", "method": "GET", "path": "/api/v1/orders", "headers": [], "client": ("203.0.113.9", 1)}
    )
    with caplog.at_level(logging.WARNING, "hookstream.admin"):
        for _ in range(500):  # someone guessing tokens
            refusals("unknown", request)
        refusals("missing", request)
        now[0] = 61.0
        refusals("unknown", request)
    assert len(counted) == 502
    assert counted[0] == ("admin", "unknown")
    logged = [(r.reason, r.refused_before_unlogged) for r in caplog.records]  # type: ignore[attr-defined]
    assert logged == [("unknown", 0), ("missing", 0), ("unknown", 499)]
    assert caplog.records[0].client == "203.0.113.9"  # type: ignore[attr-defined]


def test_a_page_position_is_partition_colon_offset_or_a_precise_422() -> None:
    from hookstream_services.admin.errors import ApiError
    from hookstream_services.admin.inputs import position

    assert position("2:1234", "after") == (2, 1234)
    assert position(None, "after") is None
    for bad in ("2", "a:1", "1:-1", "1:2:3", "9" * 50 + ":1", ""):
        with pytest.raises(ApiError) as refused:
            position(bad, "after")
        assert refused.value.status == 422

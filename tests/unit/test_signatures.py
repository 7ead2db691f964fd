"""Our schemes agree with the platforms' own libraries, both ways."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import stripe
from hookstream.signatures import (
    InvalidSignature,
    base64_hmac,
    hex_hmac_header,
    standard_headers,
    stripe_header,
    verify_base64_hmac,
    verify_hex_hmac,
    verify_standard,
    verify_stripe,
)

BODY = b'{"id": 1, "note": "caf\xc3\xa9"}'
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
WHSEC_NEW = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()


def test_standard_webhooks_signed_by_the_official_library_verify() -> None:
    now = datetime.now(UTC)
    signature = standardwebhooks.Webhook(WHSEC).sign("msg_1", now, BODY.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    verify_standard(headers, BODY, [WHSEC_NEW, WHSEC], now=time.time(), tolerance_s=300)


def test_what_we_sign_the_official_library_verifies_with_either_rotated_secret() -> None:
    headers = standard_headers([WHSEC, WHSEC_NEW], "msg_2", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (WHSEC, WHSEC_NEW):
        assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {"id": 1, "note": "café"}


def test_standard_webhooks_rejections() -> None:
    ts = int(time.time())
    good = standard_headers([WHSEC], "msg_3", ts, BODY)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_standard(good, BODY + b" ", [WHSEC], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_standard(good, BODY, [WHSEC_NEW], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="outside the 300 s tolerance"):
        verify_standard(good, BODY, [WHSEC], now=ts + 301, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="missing webhook-id"):
        verify_standard({"webhook-id": "x"}, BODY, [WHSEC], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="no v1 signature"):
        verify_standard({**good, "webhook-signature": "v2,abc v1,%%%"}, BODY, [WHSEC], now=ts, tolerance_s=300)


def test_stripe_header_built_by_the_sdk_verifies_and_ours_verifies_in_the_sdk() -> None:
    ts = int(time.time())
    sdk_header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), "whsec_stripe", ts)
    verify_stripe(sdk_header, BODY, ["whsec_old", "whsec_stripe"], now=ts, tolerance_s=300)
    assert stripe.WebhookSignature.verify_header(BODY, stripe_header("whsec_stripe", BODY, ts), "whsec_stripe", 300)


def test_stripe_rotation_header_with_several_v1_and_rejections() -> None:
    ts = int(time.time())
    one, two = stripe_header("s1", BODY, ts), stripe_header("s2", BODY, ts)
    both = f"{one},v1={two.split('v1=')[1]},v0=deadbeef"
    verify_stripe(both, BODY, ["s2"], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="outside the 300 s tolerance"):
        verify_stripe(one, BODY, ["s1"], now=ts - 301, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_stripe(one, BODY, ["s2"], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="no timestamp"):
        verify_stripe("v1=abcd", BODY, ["s1"], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="malformed timestamp"):
        verify_stripe("t=soon,v1=abcd", BODY, ["s1"], now=ts, tolerance_s=300)
    with pytest.raises(InvalidSignature, match="missing"):
        verify_stripe(None, BODY, ["s1"], now=ts, tolerance_s=300)


def test_base64_and_hex_hmac() -> None:
    verify_base64_hmac(base64_hmac("shpss", BODY), BODY, ["other", "shpss"], header="X-Shopify-Hmac-Sha256")
    with pytest.raises(InvalidSignature, match="X-WC-Webhook-Signature does not match"):
        verify_base64_hmac(base64_hmac("x", BODY), BODY, ["y"], header="X-WC-Webhook-Signature")
    with pytest.raises(InvalidSignature, match="is not base64"):
        verify_base64_hmac("***", BODY, ["y"], header="X-WC-Webhook-Signature")
    verify_hex_hmac(hex_hmac_header("k", BODY), BODY, ["k"])
    with pytest.raises(InvalidSignature, match="sha256=<hex>"):
        verify_hex_hmac("md5=00", BODY, ["k"])
    with pytest.raises(InvalidSignature, match="no secret is configured"):
        verify_hex_hmac(hex_hmac_header("k", BODY), BODY, [])

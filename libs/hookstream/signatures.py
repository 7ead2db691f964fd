"""Webhook signature schemes, written to the letter of each platform's documentation.

Every ``verify_*`` takes the raw body exactly as received and a list of active
secrets (rotation: any one may match), compares in constant time, and raises
``InvalidSignature`` with a reason safe to return to the caller. Schemes that sign a
timestamp (Stripe, Standard Webhooks) also reject timestamps outside ``tolerance_s``,
which is what makes a captured request useless for replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from hookstream.errors import HookstreamError


class InvalidSignature(HookstreamError):
    """The request is not signed by a known secret (or its timestamp is outside the tolerance)."""


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _any_matches(expected: Sequence[bytes], received: Sequence[bytes]) -> bool:
    # Every pair is compared, so the time taken does not depend on which one matched.
    matched = False
    for want in expected:
        for got in received:
            matched |= hmac.compare_digest(want, got)
    return matched


def _secrets(secrets: Sequence[str], to_key: Callable[[str], bytes] = str.encode) -> list[bytes]:
    if not secrets:
        raise InvalidSignature("no secret is configured for this channel")
    return [to_key(s) for s in secrets]


def _check_time(timestamp: int, now: float, tolerance_s: int) -> None:
    if abs(now - timestamp) > tolerance_s:
        raise InvalidSignature(f"timestamp is outside the {tolerance_s} s tolerance")


def base64_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(_hmac_sha256(secret.encode(), body)).decode()


def verify_base64_hmac(header_value: str | None, body: bytes, secrets: Sequence[str], *, header: str) -> None:
    """Shopify (``X-Shopify-Hmac-Sha256``) and WooCommerce (``X-WC-Webhook-Signature``):
    base64(HMAC-SHA256(secret, raw body))."""
    if not header_value:
        raise InvalidSignature(f"missing {header} header")
    try:
        received = base64.b64decode(header_value.strip(), validate=True)
    except binascii.Error:
        raise InvalidSignature(f"{header} is not base64") from None
    if not _any_matches([_hmac_sha256(k, body) for k in _secrets(secrets)], [received]):
        raise InvalidSignature(f"{header} does not match the body")


def stripe_header(secret: str, body: bytes, timestamp: int) -> str:
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def verify_stripe(
    header_value: str | None, body: bytes, secrets: Sequence[str], *, now: float, tolerance_s: int
) -> None:
    """``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``; HMAC-SHA256 of ``"<t>." + body``."""
    if not header_value:
        raise InvalidSignature("missing Stripe-Signature header")
    timestamp: int | None = None
    received: list[bytes] = []
    for item in header_value.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("Stripe-Signature has a malformed timestamp") from None
        elif key == "v1":
            try:
                received.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None:
        raise InvalidSignature("Stripe-Signature has no timestamp")
    if not received:
        raise InvalidSignature("Stripe-Signature has no v1 signature")
    signed = f"{timestamp}.".encode() + body
    if not _any_matches([_hmac_sha256(k, signed) for k in _secrets(secrets)], received):
        raise InvalidSignature("Stripe-Signature does not match the body")
    _check_time(timestamp, now, tolerance_s)


def _standard_key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise InvalidSignature("configured Standard Webhooks secret is not whsec_<base64>") from None


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` entry of a ``webhook-signature`` header."""
    digest = _hmac_sha256(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every given secret (rotation)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets),
    }


def verify_standard(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, now: float, tolerance_s: int
) -> None:
    """Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`` (space-separated
    list), key = base64-decoded part of ``whsec_…``. Also accepts the ``svix-`` header names."""
    msg_id = headers.get("webhook-id") or headers.get("svix-id")
    timestamp_s = headers.get("webhook-timestamp") or headers.get("svix-timestamp")
    signature = headers.get("webhook-signature") or headers.get("svix-signature")
    if not msg_id or not timestamp_s or not signature:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(timestamp_s)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    received: list[bytes] = []
    for entry in signature.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            received.append(base64.b64decode(value, validate=True))
        except binascii.Error:
            continue
    if not received:
        raise InvalidSignature("webhook-signature has no v1 signature")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    if not _any_matches([_hmac_sha256(k, signed) for k in _secrets(secrets, _standard_key)], received):
        raise InvalidSignature("webhook-signature does not match the body")
    _check_time(timestamp, now, tolerance_s)


def hex_hmac_header(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hex_hmac(header_value: str | None, body: bytes, secrets: Sequence[str]) -> None:
    """Generic HMAC: ``X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``."""
    if not header_value:
        raise InvalidSignature("missing X-Webhook-Signature header")
    algorithm, _, value = header_value.strip().partition("=")
    if algorithm.lower() != "sha256":
        raise InvalidSignature("X-Webhook-Signature must be sha256=<hex>")
    try:
        received = bytes.fromhex(value)
    except ValueError:
        raise InvalidSignature("X-Webhook-Signature is not hex") from None
    if not _any_matches([_hmac_sha256(k, body) for k in _secrets(secrets)], [received]):
        raise InvalidSignature("X-Webhook-Signature does not match the body")


# Every header a channel's signature travels in (lower case, as the raw envelope keeps them): a
# signed body with its signature is a webhook anyone can send again, so they are never shown back.
SIGNATURE_HEADERS = frozenset(
    {
        "x-shopify-hmac-sha256",
        "x-wc-webhook-signature",
        "stripe-signature",
        "webhook-signature",
        "svix-signature",
        "x-webhook-signature",
    }
)
REDACTED = "(redacted)"


def without_signatures(headers: dict[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SIGNATURE_HEADERS else v) for k, v in headers.items()}


def sign_as(kind: str, secret: str, headers: dict[str, str], body: bytes, now: int) -> dict[str, str]:
    """``headers`` plus the signature a channel of ``kind`` sends (what senders do; used by the demo and tests)."""
    signed = dict(headers)
    if kind == "shopify":
        signed["X-Shopify-Hmac-Sha256"] = base64_hmac(secret, body)
    elif kind == "woocommerce":
        signed["X-WC-Webhook-Signature"] = base64_hmac(secret, body)
    elif kind == "stripe":
        signed["Stripe-Signature"] = stripe_header(secret, body, now)
    elif kind == "standard":
        signed.update(standard_headers([secret], headers.get("webhook-id", "msg_test"), now, body))
    elif kind == "hmac":
        signed["X-Webhook-Signature"] = hex_hmac_header(secret, body)
    else:
        raise ValueError(f"no signing scheme named {kind!r}")
    return signed

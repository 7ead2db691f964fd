"""Signing the sample webhooks in tests, each with its channel's scheme."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from hookstream import signatures

FIXTURES = Path(__file__).parents[1] / "libs" / "hookstream_tools" / "demo" / "samples"  # the demo ships them
SHOPIFY_SECRET = "shpss_test_secret"
WOO_SECRET = "woo_test_secret"
STRIPE_SECRET = "whsec_stripe_test"
CUSTOM_SECRET = "whsec_" + base64.b64encode(b"custom-channel-test-key-32bytes!").decode()
HMAC_SECRET = "legacy-secret"

CONFIG_TOML = f"""
[ingress]
topic = "{{topic}}"
publish_timeout_ms = {{publish_timeout_ms}}

[channels.shopify]
kind = "shopify"
secrets = ["old-shopify-secret", "{SHOPIFY_SECRET}"]

[channels.woocommerce]
kind = "woocommerce"
secrets = ["{WOO_SECRET}"]

[channels.stripe]
kind = "stripe"
secrets = ["{STRIPE_SECRET}"]

[channels.b2b-portal]
kind = "standard"
secrets = ["{CUSTOM_SECRET}"]
event_type_field = "type"
order_id_field = "data.order_id"

[channels.legacy-erp]
kind = "hmac"
secrets = ["{HMAC_SECRET}"]
event_type_field = "event"
order_id_field = "order.number"

[channels.limited]
kind = "hmac"
secrets = ["{HMAC_SECRET}"]
event_type_field = "event"
rate_limit_per_s = 1
rate_limit_burst = 2
"""

SAMPLES = {
    "shopify_orders_create": "shopify",
    "shopify_orders_paid": "shopify",
    "shopify_orders_fulfilled": "shopify",
    "shopify_orders_cancelled": "shopify",
    "woocommerce_order_created": "woocommerce",
    "stripe_payment_intent_succeeded": "stripe",
    "stripe_payment_intent_payment_failed": "stripe",
    "custom_order_created": "b2b-portal",
}


def write_config(path: Path, topic: str = "webhooks.raw.v1", publish_timeout_ms: int = 5000) -> Path:
    path.write_text(CONFIG_TOML.format(topic=topic, publish_timeout_ms=publish_timeout_ms))
    return path


def load_sample(name: str) -> tuple[dict[str, str], bytes]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return dict(data["headers"]), json.dumps(data["body"]).encode()


def sign(channel: str, headers: dict[str, str], body: bytes, now: int | None = None) -> dict[str, str]:
    kind, secret = {
        "shopify": ("shopify", SHOPIFY_SECRET),
        "woocommerce": ("woocommerce", WOO_SECRET),
        "stripe": ("stripe", STRIPE_SECRET),
        "b2b-portal": ("standard", CUSTOM_SECRET),
    }.get(channel, ("hmac", HMAC_SECRET))
    return signatures.sign_as(kind, secret, headers, body, int(time.time()) if now is None else now)


def signed_sample(name: str, now: int | None = None) -> tuple[str, dict[str, str], bytes, dict[str, Any]]:
    channel = SAMPLES[name]
    headers, body = load_sample(name)
    return channel, sign(channel, headers, body, now), body, json.loads(body)


EXPECTED = {
    # sample: (event id, event type, Kafka key)
    "shopify_orders_create": ("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "orders/create", "shopify:5612345678901"),
    "shopify_orders_paid": ("0f7e6f8a-3c1d-4f0e-9a55-6d2c7b1e8a90", "orders/paid", "shopify:5612345678901"),
    "shopify_orders_fulfilled": ("7a1d3e55-8b0c-4c2f-a6e1-3f9b2d4c5e60", "orders/fulfilled", "shopify:5612345678901"),
    "shopify_orders_cancelled": ("2c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f", "orders/cancelled", "shopify:5612345678901"),
    "woocommerce_order_created": ("4f2a9c1e0b7d", "order.created", "woocommerce:727"),
    # A Stripe payment whose metadata names a Shopify order shares that order's key (and partition).
    "stripe_payment_intent_succeeded": (
        "evt_3QxY2nL5kPq8RtUv1AbCdEfG",
        "payment_intent.succeeded",
        "shopify:5612345678901",
    ),
    "stripe_payment_intent_payment_failed": (
        "evt_3QxY2nL5kPq8RtUv1ZzYyXxW",
        "payment_intent.payment_failed",
        "shopify:5612345678901",
    ),
    "custom_order_created": ("msg_2pQ7rK9sT1uV3wX5yZ", "order.created", "b2b-portal:B2B-2026-000317"),
}

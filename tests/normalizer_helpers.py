"""Raw envelopes as ingress writes them, built from the shared samples with ids of the test's choosing."""

from __future__ import annotations

import json
import time
from typing import Any

from hookstream.avro import SchemaStore
from hookstream.kafka import Producer
from hookstream.kafka.headers import CHANNEL, EVENT_ID, TRACEPARENT

from tests.signing import EXPECTED, SAMPLES, load_sample

RAW = SchemaStore.bundled().serde("webhooks.raw.v1")
CANONICAL = SchemaStore.bundled().serde("orders.events.v1")


def envelope(
    sample: str,
    *,
    event_id: str | None = None,
    order: int | str | None = None,
    body_changes: dict[str, Any] | None = None,
    topic: str | None = None,
) -> dict[str, Any]:
    """The sample as ingress would publish it; ``order`` renumbers the order, ``topic`` the Shopify topic."""
    headers, raw_body = load_sample(sample)
    body = json.loads(raw_body)
    channel = SAMPLES[sample]
    default_event_id, event_type, order_key = EXPECTED[sample]
    if order is not None:
        if channel in ("shopify", "woocommerce"):
            body["id"] = int(order)
        elif channel == "stripe":
            body["data"]["object"]["metadata"]["order_id"] = str(order)
        else:
            body["data"]["order_id"] = str(order)
        prefix = "shopify" if channel == "stripe" else channel
        order_key = f"{prefix}:{order}"
    body.update(body_changes or {})
    lowered = {k.lower(): v for k, v in headers.items()}
    if channel == "stripe":
        lowered["stripe-signature"] = "t=0,v1=test"
    if topic is not None:
        lowered["x-shopify-topic"] = topic
        event_type = topic
    return {
        "event_id": event_id or default_event_id,
        "channel": channel,
        "event_type": event_type,
        "order_key": order_key,
        "received_at": int(time.time() * 1000),
        "content_type": "application/json",
        "headers": lowered,
        "body": json.dumps(body).encode(),
    }


async def publish(producer: Producer, topic: str, *envelopes: dict[str, Any]) -> None:
    for e in envelopes:
        headers = [
            *RAW.headers,
            (TRACEPARENT, b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            (EVENT_ID, e["event_id"].encode()),
            (CHANNEL, e["channel"].encode()),
        ]
        await producer.send(topic, RAW.encode(e), key=e["order_key"], headers=headers)

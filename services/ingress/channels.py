"""Channel adapters: each knows its platform's signature scheme and where the event id,
event type and order id live. Adapters are plain objects; the app only calls them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookstream import signatures
from hookstream_services.ingress.config import ChannelConfig


class BadPayload(Exception):
    """The request is authentic but lacks what the channel's contract requires (400)."""


@dataclass(frozen=True)
class Described:
    event_id: str
    event_type: str
    order_key: str


def _field(payload: Any, path: str) -> Any:
    value = payload
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text or None
    return None


def _required_header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise BadPayload(f"missing {name} header")
    return value


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadPayload("body must be a JSON object")
    return payload


class Channel:
    """Base: keeps the headers a later re-verification or replay needs."""

    header_prefixes: tuple[str, ...] = ()

    def __init__(self, name: str, config: ChannelConfig) -> None:
        self.name = name
        self.config = config
        self.secrets = config.secret_values(name)

    def kept_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in headers.items() if k == "content-type" or k.startswith(self.header_prefixes)}

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        raise NotImplementedError

    def describe(self, headers: Mapping[str, str], payload: Any, body: bytes) -> Described:
        raise NotImplementedError

    def key(self, order_id: str | None, event_id: str) -> str:
        return f"{self.name}:{order_id}" if order_id else f"{self.name}:event:{event_id}"


class Base64HmacChannel(Channel):
    """Shopify and WooCommerce: base64 HMAC of the raw body; delivery id and topic in headers.

    An order resource's own ``id`` is the order id; other resources (refunds, fulfilments) carry ``order_id``.
    """

    signature_header: str
    event_id_header: str
    topic_header: str

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        signatures.verify_base64_hmac(
            headers.get(self.signature_header.lower()), body, self.secrets, header=self.signature_header
        )

    def is_order_resource(self, headers: Mapping[str, str], topic: str) -> bool:
        raise NotImplementedError

    def describe(self, headers: Mapping[str, str], payload: Any, body: bytes) -> Described:
        payload = _object(payload)
        event_id = _required_header(headers, self.event_id_header)
        topic = _required_header(headers, self.topic_header)
        field = "id" if self.is_order_resource(headers, topic) else "order_id"
        return Described(event_id, topic, self.key(_text(payload.get(field)), event_id))


class Shopify(Base64HmacChannel):
    header_prefixes = ("x-shopify-",)
    signature_header = "X-Shopify-Hmac-Sha256"
    event_id_header = "X-Shopify-Webhook-Id"
    topic_header = "X-Shopify-Topic"

    def is_order_resource(self, headers: Mapping[str, str], topic: str) -> bool:
        return topic.startswith("orders/")


class WooCommerce(Base64HmacChannel):
    header_prefixes = ("x-wc-webhook-",)
    signature_header = "X-WC-Webhook-Signature"
    event_id_header = "X-WC-Webhook-Delivery-ID"
    topic_header = "X-WC-Webhook-Topic"

    def is_order_resource(self, headers: Mapping[str, str], topic: str) -> bool:
        return (headers.get("x-wc-webhook-resource") or topic.partition(".")[0]) == "order"


class Stripe(Channel):
    header_prefixes = ("stripe-",)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        signatures.verify_stripe(
            headers.get("stripe-signature"), body, self.secrets, now=now, tolerance_s=self.config.tolerance_s
        )

    def describe(self, headers: Mapping[str, str], payload: Any, body: bytes) -> Described:
        payload = _object(payload)
        event_id = _text(payload.get("id"))
        event_type = _text(payload.get("type"))
        if not event_id or not event_type:
            raise BadPayload("a Stripe event needs string fields id and type")
        obj = _field(payload, "data.object")
        metadata = _field(obj, "metadata") or {}
        linked = _text(metadata.get("order_id")) if isinstance(metadata, dict) else None
        if linked:
            # A payment for an order of another channel shares that order's key, hence its partition and order.
            channel = _text(metadata.get("channel")) or self.config.order_channel or self.name
            return Described(event_id, event_type, f"{channel}:{linked}")
        return Described(event_id, event_type, self.key(_text(_field(obj, "id")), event_id))


class Custom(Channel):
    """Channels declared in configuration, signed with Standard Webhooks or a plain HMAC."""

    def describe(self, headers: Mapping[str, str], payload: Any, body: bytes) -> Described:
        payload = _object(payload)
        c = self.config
        assert c.event_type_field is not None
        event_type = _text(_field(payload, c.event_type_field))
        if not event_type:
            raise BadPayload(f"payload has no event type at {c.event_type_field!r}")
        event_id = self.event_id(headers, payload, body)
        order_id = _text(_field(payload, c.order_id_field)) if c.order_id_field else None
        return Described(event_id, event_type, self.key(order_id, event_id))

    def event_id(self, headers: Mapping[str, str], payload: dict[str, Any], body: bytes) -> str:
        if self.config.event_id_field:
            found = _text(_field(payload, self.config.event_id_field))
            if not found:
                raise BadPayload(f"payload has no event id at {self.config.event_id_field!r}")
            return found
        # No id anywhere: the content itself, so a redelivery of the same body dedupes downstream.
        return "sha256:" + hashlib.sha256(body).hexdigest()


class StandardWebhooks(Custom):
    header_prefixes = ("webhook-", "svix-")

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        signatures.verify_standard(headers, body, self.secrets, now=now, tolerance_s=self.config.tolerance_s)

    def event_id(self, headers: Mapping[str, str], payload: dict[str, Any], body: bytes) -> str:
        if self.config.event_id_field:
            return super().event_id(headers, payload, body)
        return headers.get("webhook-id") or headers["svix-id"]  # verify() has required one of them


class GenericHmac(Custom):
    header_prefixes = ("x-webhook-",)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        signatures.verify_hex_hmac(headers.get("x-webhook-signature"), body, self.secrets)

    def event_id(self, headers: Mapping[str, str], payload: dict[str, Any], body: bytes) -> str:
        header = headers.get("x-webhook-id", "").strip()
        return header or super().event_id(headers, payload, body)


KINDS: dict[str, type[Channel]] = {
    "shopify": Shopify,
    "woocommerce": WooCommerce,
    "stripe": Stripe,
    "standard": StandardWebhooks,
    "hmac": GenericHmac,
}


def build_channels(configs: Mapping[str, ChannelConfig]) -> dict[str, Channel]:
    return {name: KINDS[c.kind](name, c) for name, c in configs.items()}

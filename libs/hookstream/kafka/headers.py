"""Header names on hookstream records (see docs/design.md, "Kafka contracts")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"  # carried verbatim beside traceparent (vendors' trace state)
EVENT_ID = "hookstream-event-id"
CHANNEL = "hookstream-channel"
EVENT_TYPE = "hookstream-event-type"  # on canonical events: a consumer skips types it does not act on undecoded
RECEIVED_AT = "hookstream-received-at"  # ms since the epoch when the ingress took the webhook (end-to-end latency)
SCHEMA_FINGERPRINT = "hookstream-schema-fingerprint"
ATTEMPT = "hookstream-attempt"
NOT_BEFORE = "hookstream-not-before"
ORIGINAL_TOPIC = "hookstream-original-topic"
ORIGINAL_PARTITION = "hookstream-original-partition"
ORIGINAL_OFFSET = "hookstream-original-offset"
FIRST_FAILED_AT = "hookstream-first-failed-at"
ERROR_CLASS = "hookstream-error-class"
ERROR_MESSAGE = "hookstream-error-message"

HeaderList = list[tuple[str, bytes]]


def header_list(values: Mapping[str, str | bytes]) -> HeaderList:
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in values.items()]


def header_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    """Last value wins, as Kafka clients conventionally read headers by name."""
    return {k: (v or b"") for k, v in (headers or ())}


def header_str(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for key, value in reversed(headers or ()):
        if key == name:
            return (value or b"").decode()
    return None


def encode_headers(headers: HeaderList) -> str:
    """Headers as one text value, for a Postgres row that must give the record back byte for byte."""
    # latin-1 maps every byte to one code point, so any header value survives the round trip.
    return json.dumps([[k, v.decode("latin-1")] for k, v in headers])


def decode_headers(text: str) -> HeaderList:
    return [(k, v.encode("latin-1")) for k, v in json.loads(text)]

"""How the admin API shows things: subscriptions without their secrets, dead letters, rows as JSON."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from hookstream.avro import SchemaStore
from hookstream.consumer.dlq import DeadLetter
from hookstream.errors import SchemaError
from hookstream.http.outbound.sender import explain
from hookstream.signatures import without_signatures
from hookstream.store.deliveries import AttemptRecord
from hookstream_schemas import topics

_RAW = SchemaStore.bundled().serde(topics.RAW.name)


def letter(d: DeadLetter, *, signatures: bool = False) -> dict[str, Any]:
    """A dead letter as the API shows it: why, where from, its headers, and its payload (text when it is).

    A raw webhook's envelope keeps the channel's signature headers; without ``signatures`` (any token
    below admin) they are redacted, since a signed body with its signature can be sent to us again."""
    value = d.value or b""
    if not signatures:
        value = _redacted_envelope(value, d.headers)
    try:
        payload, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(value).decode(), "base64"
    return {
        "position": d.position,
        "event_id": d.event_id,
        "key": d.key,
        "reason": d.reason,
        "attempts": d.attempts,
        "origin": d.origin,
        "first_failed_at": datetime.fromtimestamp(d.first_failed_at_ms / 1000, UTC).isoformat(),
        "redriven": d.redriven,
        "headers": {k: v.decode("utf-8", "replace") for k, v in d.headers},
        "payload": payload,
        "payload_encoding": encoding,
    }


def _redacted_envelope(value: bytes, headers: list[tuple[str, bytes]]) -> bytes:
    try:
        envelope = _RAW.decode(value, headers)
    except SchemaError:  # not a raw webhook: nothing signed in it
        return value
    return _RAW.encode({**envelope, "headers": without_signatures(envelope["headers"])})


def jsonable(row: Any) -> Any:
    if isinstance(row, dict):
        return {k: jsonable(v) for k, v in row.items() if k not in ("value", "headers_raw")}
    if isinstance(row, list | tuple):
        return [jsonable(v) for v in row]
    if isinstance(row, datetime):
        return row.isoformat()
    if isinstance(row, bytes | memoryview):
        return None
    return row


def attempt(row: dict[str, Any]) -> dict[str, Any]:
    """One logged attempt, with what it means in words (DNS, TLS, timeout, refused, 4xx/5xx)."""
    record = AttemptRecord(row["status_code"], row["latency_ms"], row["response_excerpt"], row["error"])
    return {**jsonable(row), "explanation": explain(record)}

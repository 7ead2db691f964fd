"""Headers stored in Postgres as one text value (outbox, parked records, deliveries): lossless for any bytes."""

from __future__ import annotations

from hookstream.kafka.headers import decode_headers, encode_headers


def test_outbox_headers_survive_any_bytes() -> None:
    headers = [("traceparent", b"00-ab-cd-01"), ("raw", bytes(range(256))), ("empty", b"")]
    assert decode_headers(encode_headers(headers)) == headers

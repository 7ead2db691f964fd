from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hookstream.avro import Schema, SchemaStore
from hookstream.errors import SchemaError
from hookstream.kafka.headers import SCHEMA_FINGERPRINT

V1 = {
    "type": "record",
    "name": "Thing",
    "namespace": "t",
    "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "long"}],
}
V2 = {**V1, "fields": [*V1["fields"], {"name": "note", "type": "string", "default": "none"}]}


def test_bundled_raw_schema_round_trip() -> None:
    serde = SchemaStore.bundled().serde("webhooks.raw.v1")
    record = {
        "event_id": "e",
        "channel": "stripe",
        "event_type": "payment_intent.succeeded",
        "order_key": "o",
        "received_at": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        "content_type": "application/json",
        "headers": {"stripe-signature": "t=1,v1=ab"},
        "body": b"\x00\xff{}",
    }
    assert serde.decode(serde.encode(record), serde.headers) == record


def test_reader_resolves_an_older_writer_by_fingerprint() -> None:
    old, new = Schema.from_json("thing.v1", json.dumps(V1)), Schema.from_json("thing.v1", json.dumps(V2))
    assert old.fingerprint != new.fingerprint
    writer = SchemaStore([old]).serde("thing.v1")
    value = writer.encode({"id": "a", "n": 7})
    reader = SchemaStore([old, new]).serde("thing.v1")  # both known; the last one given is read into
    assert reader.decode(value, writer.headers) == {"id": "a", "n": 7, "note": "none"}


def test_records_of_every_earlier_published_version_are_read_into_the_current_one() -> None:
    """What an older release wrote is still on the topics during (and after) a rolling upgrade."""
    history = Path(__file__).resolve().parents[2] / "schemas" / "history"
    store = SchemaStore.bundled()
    versions = sorted(history.glob("*/*.avsc"))
    assert versions, "schemas/history keeps the earlier versions"
    for path in versions:
        contract = path.parent.name
        old = Schema.from_json(contract, path.read_text())
        assert old.fingerprint != store.get(contract).fingerprint, f"{path} is the current version"
        assert store.by_fingerprint(old.fingerprint) == old  # bundled
    # orders.fulfillment.v1 gained the credit_note_generated kind; a first-version record still reads.
    first = Schema.from_json("orders.fulfillment.v1", (history / "orders.fulfillment.v1" / "1.avsc").read_text())
    writer = SchemaStore([first]).serde("orders.fulfillment.v1")
    record = {
        "event_id": "p1:invoice_generated",
        "order_id": "shopify:1",
        "kind": "invoice_generated",
        "invoice_number": "INV-SHOP-000001",
        "fulfillment_id": None,
        "priority": False,
        "at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    }
    value = writer.encode(record)
    assert store.serde("orders.fulfillment.v1").decode(value, writer.headers) == record


def test_unknown_fingerprint_and_bad_records_are_schema_errors() -> None:
    serde = SchemaStore([Schema.from_json("thing.v1", json.dumps(V1))]).serde("thing.v1")
    with pytest.raises(SchemaError, match="unknown writer schema fingerprint"):
        serde.decode(b"\x02a\x0e", [(SCHEMA_FINGERPRINT, b"0000")])
    with pytest.raises(SchemaError, match=r"does not match thing\.v1"):
        serde.encode({"id": "a", "n": "not a number"})
    with pytest.raises(SchemaError, match=r"not a valid thing\.v1"):
        serde.decode(b"\x02", serde.headers)


def test_invalid_schema_and_unknown_name() -> None:
    with pytest.raises(SchemaError, match="not valid Avro"):
        Schema.from_json("bad", json.dumps({"type": "record", "name": "x", "fields": [{"name": "a", "type": "nope"}]}))
    with pytest.raises(SchemaError, match="no schema named 'missing'"):
        SchemaStore.bundled().get("missing")

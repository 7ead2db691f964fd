"""Avro serde over the contracts in ``schemas/*.avsc`` (fastavro, schemaless encoding).

The writer's schema fingerprint (CRC-64-AVRO of the parsing canonical form, as in the
Avro single-object encoding) travels in the ``hookstream-schema-fingerprint`` header,
so a reader picks the exact writer schema and resolves it into its own version.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from hookstream.errors import SchemaError
from hookstream.kafka.headers import SCHEMA_FINGERPRINT, HeaderList

_ENCODE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, OverflowError)


@dataclass(frozen=True)
class Schema:
    name: str  # the contract, e.g. "webhooks.raw.v1"
    parsed: Any
    fingerprint: str

    @classmethod
    def from_json(cls, name: str, text: str) -> Schema:
        try:
            parsed = fastavro.parse_schema(json.loads(text), _force=True)
        except (ValueError, fastavro.schema.SchemaParseException) as exc:
            raise SchemaError(f"schema {name!r} is not valid Avro: {exc}") from exc
        return cls(name, parsed, fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class SchemaStore:
    """Every known schema, by contract name and by fingerprint.

    Several versions of one contract may be given (older writers still on the topic);
    the last one given for a name is the version that name encodes with and reads into.
    """

    def __init__(self, schemas: list[Schema]) -> None:
        self._by_name = {s.name: s for s in schemas}
        self._by_fingerprint = {s.fingerprint: s for s in schemas}

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaStore:
        return cls(
            [Schema.from_json(p.name.removesuffix(".avsc"), p.read_text()) for p in sorted(directory.glob("*.avsc"))]
        )

    @classmethod
    def bundled(cls) -> SchemaStore:
        """The schemas shipped in ``hookstream_schemas``: package data, so read and parsed once per process."""
        return _bundled()

    def get(self, name: str) -> Schema:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchemaError(f"no schema named {name!r}; known: {sorted(self._by_name)}") from None

    def by_fingerprint(self, value: str) -> Schema:
        try:
            return self._by_fingerprint[value]
        except KeyError:
            raise SchemaError(f"unknown writer schema fingerprint {value!r}") from None

    def serde(self, name: str) -> AvroSerde:
        return AvroSerde(self, self.get(name))


@functools.cache
def _bundled() -> SchemaStore:
    """The current ``<contract>.avsc`` of every contract, and each earlier published version kept in
    ``history/<contract>/<n>.avsc``: records an older writer left on a topic are still read (by their
    fingerprint) into the current version. History comes first, so the current version is the one
    a name encodes with."""
    root = resources.files("hookstream_schemas")
    history = root.joinpath("history")
    earlier = [
        Schema.from_json(contract.name, version.read_text())
        for contract in sorted(history.iterdir() if history.is_dir() else [], key=lambda e: e.name)
        for version in sorted(contract.iterdir(), key=lambda e: int(e.name.removesuffix(".avsc")))
        if version.name.endswith(".avsc")
    ]
    current = [
        Schema.from_json(entry.name.removesuffix(".avsc"), entry.read_text())
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".avsc")
    ]
    return SchemaStore([*earlier, *current])


class AvroSerde:
    """Encodes with one contract; decodes any known writer version into it."""

    def __init__(self, store: SchemaStore, schema: Schema) -> None:
        self.store = store
        self.schema = schema
        self.headers: HeaderList = [(SCHEMA_FINGERPRINT, schema.fingerprint.encode())]

    def encode(self, record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self.schema.parsed, record)
        except _ENCODE_ERRORS as exc:
            raise SchemaError(f"record does not match {self.schema.name}: {exc}") from exc
        return buffer.getvalue()

    def decode(self, value: bytes, headers: list[tuple[str, bytes]] | None) -> dict[str, Any]:
        writer = self.schema
        for key, header_value in headers or ():
            if key == SCHEMA_FINGERPRINT:
                writer = self.store.by_fingerprint(header_value.decode())
        try:
            record = fastavro.schemaless_reader(io.BytesIO(value), writer.parsed, self.schema.parsed)
        except (EOFError, *_ENCODE_ERRORS, fastavro.read.SchemaResolutionError) as exc:
            raise SchemaError(f"value is not a valid {writer.name} record: {exc}") from exc
        if not isinstance(record, dict):
            raise SchemaError(f"{self.schema.name} is not a record schema")
        return record

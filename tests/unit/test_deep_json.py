"""Deeply nested JSON is refused with a reason, never a RecursionError: by the shared parser, at the
ingress (a 400 after the signature check, so the sender stops retrying) and in the normalizer (a
permanent error, so the record is dead-lettered)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hookstream.errors import PermanentError
from hookstream.jsonbody import MAX_DEPTH, InvalidJson, depth, loads
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hookstream_services.normalizer.mapping import InvalidPayload, normalize
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.normalizer_helpers import envelope
from tests.signing import load_sample, sign, write_config
from tests.unit.test_ingress_app import FakePublisher


def nested(levels: int) -> bytes:
    """A Shopify-shaped object whose ``note`` holds lists ``levels`` deep in all (the object is one)."""
    return b'{"id": 5612345678901, "note": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


def objects(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def test_depth_counts_arrays_and_objects_but_not_brackets_in_strings() -> None:
    assert depth(b"1") == 0
    assert depth(b'{"a": [1, {"b": []}]}') == 4
    assert depth(nested(200)) == 200
    assert depth(b'{"a": "[[[[{{{{", "b": "\\"[[[[", "c": "\\\\"}') == 1
    assert depth(b'["\\u005b", "]]]]", [[]]]') == 3


_text = st.text(alphabet=st.sampled_from('[]{}"\\/ a\u00e9\u4e2d\U0001f600\n'), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=30,
)


def levels(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(levels, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(levels, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=_json, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_depth_is_exact_for_any_json(value: object, ascii_only: bool, indent: int | None) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert depth(body) == levels(value)


def test_loads_accepts_the_limit_and_refuses_one_level_more() -> None:
    assert loads(nested(MAX_DEPTH))["id"] == 5612345678901
    assert loads(objects(MAX_DEPTH) + b" ") is not None
    with pytest.raises(InvalidJson, match=f"nested {MAX_DEPTH + 1} levels deep"):
        loads(nested(MAX_DEPTH + 1))
    with pytest.raises(InvalidJson, match=f"deeper than the {MAX_DEPTH} levels accepted"):
        loads(objects(MAX_DEPTH + 1))


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000, objects(100_000), nested(1000), b"[" * 5000 + b'"' + b"]" * 5000],
    ids=["open-brackets", "objects", "lists", "unterminated-string"],
)
def test_loads_refuses_what_would_exhaust_the_stack(body: bytes) -> None:
    with pytest.raises(InvalidJson, match="levels deep"):
        loads(body)


def test_loads_keeps_what_json_loads_accepts_and_refuses() -> None:
    sample = load_sample("shopify_orders_create")[1]
    assert loads(sample) == json.loads(sample)
    assert loads(sample.decode()) == json.loads(sample)
    text = sample.decode()
    for encoding in ("utf-8-sig", "utf-16", "utf-32", "utf-16-le"):
        assert loads(text.encode(encoding)) == json.loads(sample)
    with pytest.raises(InvalidJson, match="Expecting"):
        loads(b"{not json")
    with pytest.raises(InvalidJson, match="utf-8"):
        loads(b'{"a": "\xff"}')


def test_a_non_utf8_body_is_measured_by_its_characters() -> None:
    # U+2222 is the bytes 22 22 in UTF-16: read as bytes, it would open a string hiding the brackets after it.
    body = ('["\u2222", ' + "[" * 1000 + "]" * 1000 + "]").encode("utf-16-le")
    with pytest.raises(InvalidJson, match="1001 levels deep"):
        loads(body)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(tmp_path: Path, publisher: FakePublisher) -> TestClient:
    config = load_config(write_config(tmp_path / "hookstream.toml"))
    return TestClient(create_app(config, publisher), raise_server_exceptions=False)


def post_shopify(client: TestClient, body: bytes, status: int) -> dict[str, str]:
    headers = sign("shopify", load_sample("shopify_orders_create")[0], body)
    response = client.post("/webhooks/shopify", content=body, headers=headers)
    assert response.status_code == status, response.text[:300]
    answer: dict[str, str] = response.json()
    return answer


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000, objects(100_000), nested(1000), nested(MAX_DEPTH + 1)],
    ids=["open-brackets", "objects", "lists-1000", "just-too-deep"],
)
def test_ingress_answers_a_signed_deep_body_with_400_invalid_json(
    client: TestClient, publisher: FakePublisher, body: bytes
) -> None:
    answer = post_shopify(client, body, 400)
    assert answer["error"] == "invalid_json"
    assert "levels deep" in answer["detail"]
    assert publisher.published == []


def test_ingress_still_accepts_ordinary_bodies(client: TestClient, publisher: FakePublisher) -> None:
    sample = json.loads(load_sample("shopify_orders_create")[1])
    for body in (
        json.dumps(sample).encode(),
        json.dumps({**sample, "note": "[" * 10_000 + '"{' * 500}).encode(),  # brackets in a string are text
        nested(MAX_DEPTH),
    ):
        assert post_shopify(client, body, 200)["status"] == "accepted"
    assert len(publisher.published) == 3


@pytest.mark.parametrize(
    ("body", "levels"), [(nested(1000), 1000), (b"[" * 200_000, 200_000), (nested(MAX_DEPTH + 1), MAX_DEPTH + 1)]
)
def test_normalizer_dead_letters_a_deep_body_naming_the_depth(body: bytes, levels: int) -> None:
    raw = envelope("shopify_orders_create")
    raw["body"] = body
    with pytest.raises(InvalidPayload, match=f"nested {levels} levels deep, deeper than the {MAX_DEPTH}") as caught:
        normalize(raw)
    assert isinstance(caught.value, PermanentError)

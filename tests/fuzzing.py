"""Hostile requests for the ingress, and what must hold whatever they are: shared by the bounded
property test in CI (``tests/unit/test_fuzz_ingress.py``) and the long run (``bench/fuzz.py``).

Requests are the shared samples, signed or not, then mutated: bodies flipped, cut, padded, nested,
re-encoded or replaced by random JSON; headers dropped, duplicated, garbled or made huge; paths and
methods varied. Properties: no answer is a 5xx; nothing reaches the publisher that the channel's
secrets do not verify; every 200 names an event that was published, once, and nothing else was.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.channels import build_channels
from hookstream_services.ingress.config import load_config
from hookstream_services.ingress.publisher import Envelope
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.signing import SAMPLES, load_sample, sign, write_config

CHANNELS = ("shopify", "woocommerce", "stripe", "b2b-portal", "legacy-erp", "limited")
_SAMPLE_FOR = {channel: [s for s, c in SAMPLES.items() if c == channel] for channel in set(SAMPLES.values())}
_SAMPLE_FOR["legacy-erp"] = _SAMPLE_FOR["limited"] = []


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Envelope] = []

    async def publish(self, envelope: Envelope) -> None:
        self.published.append(envelope)

    async def ready(self) -> bool:
        return True


@dataclass
class Ingress:
    """The real ingress app in process, with a publisher that keeps what reached "Kafka"."""

    client: TestClient
    publisher: RecordingPublisher
    channels: dict[str, Any]
    answers: dict[int, int] = field(default_factory=dict)

    @classmethod
    def build(cls, folder: Path) -> Ingress:
        config = load_config(write_config(folder / "fuzz.toml"))
        publisher = RecordingPublisher()
        client = TestClient(create_app(config, publisher), raise_server_exceptions=False)
        return cls(client, publisher, build_channels(config.channels))

    def check(self, request: FuzzRequest) -> None:
        """Send one request and assert every property."""
        before = len(self.publisher.published)
        response = self.client.request(request.method, request.path, content=request.body, headers=request.headers)
        self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.text[:300], request.describe())
        published = self.publisher.published[before:]
        if response.status_code != 200:
            assert published == [], (response.status_code, request.describe())
            return
        [envelope] = published  # accepted means published, once
        assert response.json()["event_id"] == envelope.event_id
        channel = self.channels[envelope.channel]
        # Whatever was published, the channel's own secrets verify (nothing unsigned reaches Kafka).
        channel.verify({k.lower(): v for k, v in request.headers.items()}, envelope.body, time.time())
        assert envelope.body == request.body


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def describe(self) -> str:
        headers = repr(self.headers)[:600]
        return f"{self.method} {self.path[:80]} headers={headers} body={self.body[:120]!r} ({len(self.body)} B)"

    __repr__ = describe


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@st.composite
def bodies(draw: st.DrawFn, sample: bytes) -> bytes:
    how = draw(st.sampled_from(["sample", "flip", "cut", "pad", "nested", "random_json", "bytes", "reencode"]))
    if how == "sample":
        return sample
    if how == "flip":
        data = bytearray(sample)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, max(0, len(data) - 1)))
            if data:
                data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "cut":
        return sample[: draw(st.integers(0, len(sample)))]
    if how == "pad":
        return sample + draw(st.sampled_from([b" " * 1000, b"\x00", b"]" * 50, b'\n{"x":1}', "\u2028".encode()]))
    if how == "nested":
        return draw(st.sampled_from([b"[" * 200_000, _nested(5_000), b"[" * 100 + b"]" * 100, _nested(64)]))
    if how == "random_json":
        return json.dumps(draw(_json)).encode()
    if how == "reencode":
        return sample.decode().encode(draw(st.sampled_from(["utf-16", "utf-32", "latin-1"])), "replace")
    return draw(st.binary(max_size=2_000))


_header_names = st.sampled_from(
    [
        "Content-Type",
        "X-Shopify-Topic",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Hmac-Sha256",
        "X-WC-Webhook-Topic",
        "X-WC-Webhook-Signature",
        "Stripe-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Webhook-Signature",
        "traceparent",
        "tracestate",
        "Content-Encoding",
    ]
)
_header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.sampled_from(["", "application/json; charset=utf-8", "text/plain", "gzip", "t=1,v1=00", "v1,AAAA", "x" * 8000]),
)


@st.composite
def requests(draw: st.DrawFn) -> FuzzRequest:
    # Mostly real channels and the real path: a request must get past routing to test what lies behind it.
    channel = draw(st.sampled_from([*CHANNELS * 6, "nope", "..%2f..%2fadmin", "é" * 10, "a" * 300]))
    samples = _SAMPLE_FOR.get(channel) or sorted(SAMPLES)
    headers, sample = load_sample(draw(st.sampled_from(samples)))
    body = draw(bodies(sample))
    headers = {"Content-Type": "application/json", **headers}
    if draw(st.booleans()) and channel in CHANNELS:  # authentic: signed after the mutation
        headers = sign(channel, headers, body)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "set", "garble"]))
        name = draw(_header_names)
        if action == "drop":
            headers.pop(name, None)
        elif action == "set":
            headers[name] = draw(_header_values)
        elif name in headers:
            headers[name] = headers[name][::-1]
    method = draw(st.sampled_from(["POST"] * 16 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    path = draw(st.sampled_from([f"/webhooks/{channel}"] * 6 + [f"/webhooks/{channel}/", "/webhooks/", f"/{channel}"]))
    return FuzzRequest(method, path, headers, body)

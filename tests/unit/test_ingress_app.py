"""The ingress app with a fake publisher: every rule of the HTTP contract, no servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hookstream.errors import BrokerUnavailable, ProducerQueueFull
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hookstream_services.ingress.publisher import Envelope
from starlette.testclient import TestClient

from tests.signing import EXPECTED, SAMPLES, sign, signed_sample, write_config


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.fail_with: Exception | None = None

    async def publish(self, envelope: Envelope) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.append(envelope)

    async def ready(self) -> bool:
        return self.fail_with is None


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(tmp_path: Path, publisher: FakePublisher) -> TestClient:
    config = load_config(write_config(tmp_path / "hookstream.toml"))
    return TestClient(create_app(config, publisher), raise_server_exceptions=True)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_sample_signed_with_its_scheme_is_accepted(
    client: TestClient, publisher: FakePublisher, sample: str
) -> None:
    channel, headers, body, _ = signed_sample(sample)
    response = client.post(
        f"/webhooks/{channel}",
        content=body,
        headers={**headers, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    event_id, event_type, key = EXPECTED[sample]
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "event_id": event_id}
    [envelope] = publisher.published
    assert (envelope.event_id, envelope.event_type, envelope.order_key, envelope.channel) == (
        event_id,
        event_type,
        key,
        channel,
    )
    assert envelope.body == body  # byte for byte
    assert envelope.traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert "content-type" in envelope.headers


def test_the_senders_tracestate_is_carried_only_with_its_trace(client: TestClient, publisher: FakePublisher) -> None:
    channel, headers, body, _ = signed_sample("shopify_orders_create")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    for extra in ({"traceparent": parent, "tracestate": "congo=t61rcWkgMzE"}, {"tracestate": "congo=t61rcWkgMzE"}):
        assert client.post(f"/webhooks/{channel}", content=body, headers={**headers, **extra}).status_code == 200
    with_trace, without = publisher.published
    assert with_trace.tracestate == "congo=t61rcWkgMzE"
    assert without.tracestate is None  # a state without the trace it belongs to is dropped


def test_redelivery_is_accepted_again(client: TestClient, publisher: FakePublisher) -> None:
    channel, headers, body, _ = signed_sample("shopify_orders_paid")
    assert client.post(f"/webhooks/{channel}", content=body, headers=headers).status_code == 200
    assert client.post(f"/webhooks/{channel}", content=body, headers=headers).status_code == 200
    assert [e.event_id for e in publisher.published] == [EXPECTED["shopify_orders_paid"][0]] * 2


def test_hmac_custom_channel_without_id_uses_the_body_hash(client: TestClient, publisher: FakePublisher) -> None:
    body = json.dumps({"event": "order.updated", "order": {"number": 77}}).encode()
    headers = sign("legacy-erp", {"Content-Type": "application/json"}, body)
    response = client.post("/webhooks/legacy-erp", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["event_id"].startswith("sha256:")
    assert publisher.published[0].order_key == "legacy-erp:77"


def _rejected(
    client: TestClient, publisher: FakePublisher, status: int, code: str, *args: object, **kw: object
) -> dict:
    response = client.post(*args, **kw)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert publisher.published == []
    return dict(response.headers)


def test_unknown_channel_is_404(client: TestClient, publisher: FakePublisher) -> None:
    _rejected(
        client,
        publisher,
        404,
        "unknown_channel",
        "/webhooks/nope",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )


def test_oversized_body_is_413(client: TestClient, publisher: FakePublisher) -> None:
    body = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    headers = sign("shopify", {"Content-Type": "application/json"}, body)
    _rejected(client, publisher, 413, "body_too_large", "/webhooks/shopify", content=body, headers=headers)


def test_wrong_content_type_is_415(client: TestClient, publisher: FakePublisher) -> None:
    channel, headers, body, _ = signed_sample("shopify_orders_create")
    headers["Content-Type"] = "text/plain"
    _rejected(client, publisher, 415, "unsupported_media_type", f"/webhooks/{channel}", content=body, headers=headers)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_bad_or_missing_signature_is_401(client: TestClient, publisher: FakePublisher, sample: str) -> None:
    channel, headers, body, _ = signed_sample(sample)
    tampered = body.replace(b'"', b" ", 1) + b" "
    _rejected(client, publisher, 401, "invalid_signature", f"/webhooks/{channel}", content=tampered, headers=headers)
    unsigned = {k: v for k, v in headers.items() if "signature" not in k.lower() and "hmac" not in k.lower()}
    _rejected(client, publisher, 401, "invalid_signature", f"/webhooks/{channel}", content=body, headers=unsigned)


@pytest.mark.parametrize("sample", ["stripe_payment_intent_succeeded", "custom_order_created"])
def test_timestamp_outside_tolerance_is_401(client: TestClient, publisher: FakePublisher, sample: str) -> None:
    import time

    channel, headers, body, _ = signed_sample(sample, now=int(time.time()) - 301)
    _rejected(client, publisher, 401, "invalid_signature", f"/webhooks/{channel}", content=body, headers=headers)


def test_signed_body_that_is_not_json_is_400(client: TestClient, publisher: FakePublisher) -> None:
    body = b"{not json"
    headers = sign(
        "shopify",
        {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "w1"},
        body,
    )
    _rejected(client, publisher, 400, "invalid_json", "/webhooks/shopify", content=body, headers=headers)


@pytest.mark.parametrize(
    ("channel", "headers", "payload", "detail"),
    [
        ("shopify", {"X-Shopify-Topic": "orders/create"}, {"id": 1}, "missing X-Shopify-Webhook-Id header"),
        ("shopify", {"X-Shopify-Webhook-Id": "w", "X-Shopify-Topic": "orders/create"}, [1, 2], "JSON object"),
        ("stripe", {}, {"type": "x"}, "needs string fields id and type"),
        ("b2b-portal", {"webhook-id": "m1"}, {"data": {}}, "no event type at 'type'"),
    ],
)
def test_authentic_payload_missing_contract_fields_is_400(
    client: TestClient, publisher: FakePublisher, channel: str, headers: dict[str, str], payload: object, detail: str
) -> None:
    body = json.dumps(payload).encode()
    signed = sign(channel, {"Content-Type": "application/json", **headers}, body)
    response = client.post(f"/webhooks/{channel}", content=body, headers=signed)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert publisher.published == []


def test_rate_limit_is_429_with_retry_after(client: TestClient, publisher: FakePublisher) -> None:
    body = json.dumps({"event": "ping"}).encode()
    headers = sign("limited", {"Content-Type": "application/json"}, body)
    assert [client.post("/webhooks/limited", content=body, headers=headers).status_code for _ in range(2)] == [200, 200]
    response = client.post("/webhooks/limited", content=body, headers=headers)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert len(publisher.published) == 2


@pytest.mark.parametrize(
    ("failure", "code"),
    [(ProducerQueueFull("full"), "overloaded"), (BrokerUnavailable("down"), "broker_unavailable")],
)
def test_unstored_event_is_503_never_200(
    client: TestClient, publisher: FakePublisher, failure: Exception, code: str
) -> None:
    publisher.fail_with = failure
    channel, headers, body, _ = signed_sample("shopify_orders_create")
    response = client.post(f"/webhooks/{channel}", content=body, headers=headers)
    assert response.status_code == 503
    assert response.json()["error"] == code
    assert "Retry-After" in response.headers
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_config_errors_are_precise(tmp_path: Path) -> None:
    from hookstream.errors import ConfigurationError

    path = tmp_path / "c.toml"
    path.write_text('[channels.shop]\nkind = "shopify"\nsecrets_env = ["NOPE_NOT_SET"]\n')
    with pytest.raises(ConfigurationError, match=r"channel 'shop' has no secret: set one of \['NOPE_NOT_SET'\]"):
        load_config(path)
    path.write_text('[channels.x]\nkind = "standard"\nsecrets = ["whsec_AAAA"]\n')
    with pytest.raises(ConfigurationError, match="need event_type_field"):
        load_config(path)
    path.write_text('[channels.Bad]\nkind = "shopify"\nsecrets = ["s"]\n')
    with pytest.raises(ConfigurationError, match="lower-case"):
        load_config(path)
    with pytest.raises(ConfigurationError, match="does not exist; set HOOKSTREAM_CONFIG"):
        load_config(tmp_path / "missing.toml")


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "SHOPIFY_WEBHOOK_SECRET",
        "WOOCOMMERCE_WEBHOOK_SECRET",
        "STRIPE_WEBHOOK_SECRET",
        "B2B_PORTAL_WEBHOOK_SECRET",
    ):
        monkeypatch.setenv(var, "whsec_dGVzdA==")
    config = load_config(Path(__file__).parents[2] / "config" / "hookstream.example.toml")
    assert set(config.channels) == {"shopify", "woocommerce", "stripe", "b2b-portal", "legacy-erp"}


def test_metrics_count_answers_per_channel_and_status(client: TestClient, publisher: FakePublisher) -> None:
    channel, headers, body, _ = signed_sample("shopify_orders_create")
    assert client.post(f"/webhooks/{channel}", content=body, headers=headers).status_code == 200
    assert (
        client.post(f"/webhooks/{channel}", content=body, headers={**headers, "X-Shopify-Hmac-Sha256": "x"}).status_code
        == 401
    )
    assert client.post("/webhooks/made-up", content=body, headers=headers).status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert f'hookstream_http_requests_total{{channel="{channel}",status="200"}} 1.0' in text
    assert f'hookstream_http_requests_total{{channel="{channel}",status="401"}} 1.0' in text
    assert 'hookstream_http_requests_total{channel="unknown",status="404"} 1.0' in text  # no label per made-up name
    assert f'hookstream_http_request_seconds_count{{channel="{channel}"}} 2.0' in text

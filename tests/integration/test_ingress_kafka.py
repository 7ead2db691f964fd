"""Ingress against the real broker: 200 means the record is on the topic, with key and headers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hookstream.avro import SchemaStore
from hookstream.kafka.headers import CHANNEL, EVENT_ID, SCHEMA_FINGERPRINT, TRACEPARENT, header_dict
from hookstream_services.ingress.app import create_app, kafka_lifespan
from hookstream_services.ingress.config import load_config
from hookstream_services.ingress.publisher import KafkaPublisher
from hookstream_tools.devstack import KafkaJars, LocalKafka
from hookstream_tools.devstack.process import free_port
from hookstream_tools.devstack.settings import DevStackSettings
from starlette.testclient import TestClient

from tests.kafka_helpers import read_topic
from tests.signing import EXPECTED, SAMPLES, load_sample, sign, signed_sample, write_config


def _client(bootstrap: str, config_path: Path) -> TestClient:
    config = load_config(config_path)
    publisher = KafkaPublisher(bootstrap, config.ingress)
    return TestClient(create_app(config, publisher, lifespan=kafka_lifespan(publisher)))


def test_every_sample_lands_on_the_topic_and_rejections_do_not(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    with _client(kafka_bootstrap, write_config(tmp_path / "c.toml", topic=unique_name)) as client:
        for sample in sorted(SAMPLES):
            channel, headers, body, _ = signed_sample(sample)
            assert client.post(f"/webhooks/{channel}", content=body, headers=headers).status_code == 200
            # The same body, tampered or unsigned or late, must leave nothing behind.
            assert client.post(f"/webhooks/{channel}", content=body + b" ", headers=headers).status_code == 401
        channel, headers, body, _ = signed_sample("stripe_payment_intent_succeeded", now=int(time.time()) - 600)
        assert client.post(f"/webhooks/{channel}", content=body, headers=headers).status_code == 401
        channel, headers, body, _ = signed_sample("shopify_orders_create")
        assert client.post("/webhooks/nope", content=body, headers=headers).status_code == 404
        assert (
            client.post(
                f"/webhooks/{channel}", content=body, headers={**headers, "Content-Type": "text/xml"}
            ).status_code
            == 415
        )
        assert client.get("/readyz").status_code == 200

    records = read_topic(kafka_bootstrap, unique_name, expect=len(SAMPLES))
    assert len(records) == len(SAMPLES)
    serde = SchemaStore.bundled().serde("webhooks.raw.v1")
    seen = {}
    for msg in records:
        envelope = serde.decode(msg.value(), msg.headers())
        headers = header_dict(msg.headers())
        assert msg.key().decode() == envelope["order_key"]
        assert headers[EVENT_ID].decode() == envelope["event_id"]
        assert headers[CHANNEL].decode() == envelope["channel"]
        assert headers[SCHEMA_FINGERPRINT] == serde.schema.fingerprint.encode()
        assert headers[TRACEPARENT].startswith(b"00-")
        seen[envelope["event_id"]] = (envelope["event_type"], envelope["order_key"], msg.partition())
    assert {eid: (etype, key) for eid, (etype, key, _) in seen.items()} == {
        eid: (etype, key) for eid, etype, key in EXPECTED.values()
    }
    # Shopify's order events and the Stripe payments for that order share one partition.
    partitions = {part for _, key, part in seen.values() if key == "shopify:5612345678901"}
    assert len(partitions) == 1


@pytest.mark.slow
def test_broker_down_gives_503_and_no_200_is_lost_then_recovers(tmp_path: Path, unique_name: str) -> None:
    settings = DevStackSettings(
        state_dir=tmp_path / "outage", kafka_port=free_port(), kafka_controller_port=free_port()
    )
    kafka = LocalKafka(settings, KafkaJars(settings.cache_dir))
    kafka.start()
    kafka.wait_ready()
    accepted: list[str] = []
    statuses: list[int] = []
    try:
        config = write_config(tmp_path / "c.toml", topic=unique_name, publish_timeout_ms=2000)
        with _client(kafka.bootstrap, config) as client:

            def send(i: int) -> int:
                channel = "b2b-portal"
                raw_headers, raw = load_sample("custom_order_created")
                signed = sign(channel, {**raw_headers, "webhook-id": f"msg_outage_{i}"}, raw)
                response = client.post(f"/webhooks/{channel}", content=raw, headers=signed)
                if response.status_code == 200:
                    accepted.append(response.json()["event_id"])
                return response.status_code

            assert send(0) == 200
            kafka.stop()
            statuses = [send(i) for i in range(1, 4)]
            assert statuses == [503, 503, 503]
            assert client.get("/readyz").status_code in (200, 503)
            kafka.start()
            kafka.wait_ready()
            deadline = time.monotonic() + 60
            status = send(100)
            while status != 200 and time.monotonic() < deadline:
                time.sleep(0.5)
                status = send(101)
            assert status == 200
        records = read_topic(kafka.bootstrap, unique_name, expect=len(accepted))
        on_topic = {header_dict(m.headers())[EVENT_ID].decode() for m in records}
        assert set(accepted) <= on_topic  # every 200 is stored
    finally:
        kafka.stop()

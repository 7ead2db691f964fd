"""Avro records produced by our producer come back intact from the real broker."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from hookstream.avro import SchemaStore
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream.kafka.headers import CHANNEL, EVENT_ID, SCHEMA_FINGERPRINT, header_dict


async def test_avro_round_trip_keeps_key_headers_and_bytes(
    kafka_bootstrap: str, topic_admin: TopicAdmin, unique_name: str
) -> None:
    topic_admin.ensure_topics([TopicSpec(unique_name, partitions=3, retention_ms=3_600_000)])
    serde = SchemaStore.bundled().serde("webhooks.raw.v1")
    body = b'{"id": 5612345678901, "note": "caf\xc3\xa9 \x00 raw"}'
    records = [
        {
            "event_id": f"evt-{i}",
            "channel": "shopify",
            "event_type": "orders/create",
            "order_key": f"order-{i % 2}",
            "received_at": int(time.time() * 1000),
            "content_type": "application/json",
            "headers": {"x-shopify-topic": "orders/create"},
            "body": body,
        }
        for i in range(4)
    ]

    async with Producer(kafka_bootstrap) as producer:
        acks = [
            await producer.send(
                unique_name,
                serde.encode(r),
                key=r["order_key"],
                headers=[*serde.headers, (EVENT_ID, r["event_id"].encode()), (CHANNEL, b"shopify")],
            )
            for r in records
        ]
    assert all(a.offset >= 0 for a in acks)
    # Same key, same partition: per-order ordering starts here.
    assert acks[0].partition == acks[2].partition
    assert acks[1].partition == acks[3].partition

    consumer = AIOKafkaConsumer(
        unique_name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got = []
        deadline = time.monotonic() + 20
        while len(got) < len(records) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(batch)
    finally:
        await consumer.stop()

    assert len(got) == len(records)
    by_id = {}
    for msg in got:
        headers = header_dict(msg.headers)
        assert headers[SCHEMA_FINGERPRINT] == serde.schema.fingerprint.encode()
        decoded = serde.decode(msg.value, msg.headers)
        assert msg.key == decoded["order_key"].encode()
        assert headers[EVENT_ID] == decoded["event_id"].encode()
        by_id[decoded["event_id"]] = decoded
    for r in records:
        assert by_id[r["event_id"]]["body"] == body
        assert by_id[r["event_id"]]["received_at"].timestamp() * 1000 == r["received_at"]

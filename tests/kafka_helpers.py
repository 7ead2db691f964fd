from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message


def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20, settle_s: float = 1.0
) -> list[Message]:
    """Everything on ``topic`` from the beginning: waits for ``expect`` records, then ``settle_s`` more
    to catch records that should not be there."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is None and len(got) >= expect:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() > settle_until:
                break
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got

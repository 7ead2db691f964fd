"""Producer behaviour that needs no broker: nothing ever looks acknowledged when it is not."""

from __future__ import annotations

import pytest
from hookstream.errors import BrokerUnavailable, DeliveryFailed, HookstreamError, ProducerQueueFull
from hookstream.kafka import Producer, wait_for_broker
from hookstream.settings import KafkaSettings
from hookstream_tools.devstack.process import free_port


async def test_send_before_start_is_an_error() -> None:
    with pytest.raises(HookstreamError, match="not started"):
        await Producer("127.0.0.1:1").send("t", b"v")


async def test_full_queue_raises_retriable_error() -> None:
    settings = KafkaSettings(queue_max_messages=2, delivery_timeout_ms=1000)
    async with Producer(f"127.0.0.1:{free_port()}", settings) as producer:
        producer.send_nowait("t", b"1")
        producer.send_nowait("t", b"2")
        with pytest.raises(ProducerQueueFull) as caught:
            producer.send_nowait("t", b"3")
        assert caught.value.retriable


async def test_unreachable_broker_fails_the_delivery_future() -> None:
    settings = KafkaSettings(delivery_timeout_ms=1000, request_timeout_ms=500)
    async with Producer(f"127.0.0.1:{free_port()}", settings) as producer:
        with pytest.raises(DeliveryFailed, match="delivery to 't' failed"):
            await producer.send("t", b"v", key="k")


def test_wait_for_broker_times_out_naming_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable, match=f"Kafka at '{address}' did not answer within 1000 ms"):
        wait_for_broker(address, timeout_ms=1000)

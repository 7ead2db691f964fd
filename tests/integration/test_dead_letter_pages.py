"""Dead letters are read a page at a time: in (partition, offset) order, after a position, at most a
limit, so listing a topic that holds millions never holds them all."""

from __future__ import annotations

import asyncio

from hookstream.consumer.dlq import read_dead_letters
from hookstream.kafka import Producer, TopicAdmin, TopicSpec


async def test_pages_cover_every_letter_once_in_order(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"{unique_name}.dlq"
    TopicAdmin(kafka_bootstrap).ensure_topics([TopicSpec(topic, 3, 3_600_000)])
    async with Producer(kafka_bootstrap) as producer:
        for i in range(11):
            await producer.send(topic, f"letter {i}".encode(), key=f"order-{i % 5}", headers=[])
    everything = await asyncio.to_thread(read_dead_letters, kafka_bootstrap, topic)
    assert len(everything) == 11
    assert everything == sorted(everything, key=lambda d: (d.partition, d.offset))

    pages, after = [], None
    while True:
        page = await asyncio.to_thread(read_dead_letters, kafka_bootstrap, topic, after=after, limit=4)
        pages.append(page)
        if len(page) < 4:
            break
        after = (page[-1].partition, page[-1].offset)
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [d.position for p in pages for d in p] == [d.position for d in everything]
    last = everything[-1]
    assert (
        await asyncio.to_thread(read_dead_letters, kafka_bootstrap, topic, after=(last.partition, last.offset), limit=4)
        == []
    )

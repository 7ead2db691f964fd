"""Kafka's own SRE tool, from the resolved jars, works on groups our code creates."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from hookstream.kafka import Producer, TopicAdmin, TopicSpec
from hookstream_tools.devstack import KafkaJars
from hookstream_tools.devstack.settings import DevStackSettings

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


async def test_consumer_group_command_lists_and_describes_our_group(
    kafka_bootstrap: str, topic_admin: TopicAdmin, unique_name: str
) -> None:
    topic_admin.ensure_topics([TopicSpec(unique_name, partitions=2, retention_ms=3_600_000)])
    group = f"hookstream.{unique_name}"
    async with Producer(kafka_bootstrap) as producer:
        for i in range(5):
            await producer.send(unique_name, b"v", key=f"k{i}")

    consumer = AIOKafkaConsumer(
        unique_name,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 5 and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                seen += len(batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert seen == 5

    jars = KafkaJars(DevStackSettings().cache_dir)
    listed = jars.run_tool(CONSUMER_GROUP_COMMAND, "--bootstrap-server", kafka_bootstrap, "--list")
    assert listed.returncode == 0, listed.stderr
    assert group in listed.stdout.split()

    described = jars.run_tool(
        CONSUMER_GROUP_COMMAND, "--bootstrap-server", kafka_bootstrap, "--describe", "--group", group
    )
    assert described.returncode == 0, described.stderr
    rows = [line.split() for line in described.stdout.splitlines() if unique_name in line]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert sorted(int(r[2]) for r in rows) == [0, 1]
    assert sum(int(r[3]) for r in rows) == 5
    assert all(r[5] == "0" for r in rows)

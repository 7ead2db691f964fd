"""The outbox relay against the real broker and database: woken by the committing transaction."""

from __future__ import annotations

import asyncio

from hookstream.db import Database
from hookstream.kafka import TopicAdmin, TopicSpec
from hookstream.kafka.outbox import OutboxRelay, add_to_outbox
from hookstream_schemas.topics import outbox_spec

from tests.kafka_helpers import read_topic
from tests.waiting import until


async def test_a_commit_elsewhere_wakes_the_idle_relay(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str
) -> None:
    service, topic = f"relay-{unique_name}", f"{unique_name}.out"
    TopicAdmin(kafka_bootstrap).ensure_topics([TopicSpec(topic, 1, 3_600_000), outbox_spec(service)])
    # Polling once an hour: only the notification can explain a prompt publish. The rows are written
    # through their own connection, as another process would, so the relay's in-process wake() is never called.
    relay_db, writer_db = Database(migrated_database_url), Database(migrated_database_url)
    async with (
        relay_db,
        writer_db,
        OutboxRelay(service, kafka_bootstrap, relay_db, migrated_database_url, idle_poll_ms=3_600_000) as relay,
    ):
        for n in (1, 2):
            async with writer_db.transaction() as conn:
                await add_to_outbox(conn, service, topic, f"order-{n}", f"event-{n}", f"value-{n}".encode(), [])
            await until(lambda n=n: relay.published == n, timeout_s=30, what=f"record {n} published")
            await asyncio.sleep(1)  # the relay has gone back to waiting before the next commit
    values = [m.value() for m in read_topic(kafka_bootstrap, topic, expect=2, timeout_s=10)]
    assert values == [b"value-1", b"value-2"]

"""The outbox relay against the real broker and database: woken by the committing transaction."""

from __future__ import annotations

import asyncio
from typing import Any

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


async def test_a_marker_written_for_another_database_deletes_nothing_here(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, servers: Any
) -> None:
    """A database recreated under the same broker (or a second one using it) starts its outbox ids at
    1 again: the marker of the other database's last batch must not make its new rows "published"."""
    from hookstream.db import apply_migrations

    service, topic = f"relay-{unique_name}", f"{unique_name}.out"
    TopicAdmin(kafka_bootstrap).ensure_topics([TopicSpec(topic, 1, 3_600_000), outbox_spec(service)])
    second_url = await _second_database(servers.database_url, unique_name, create=True)
    try:
        await apply_migrations(second_url)
        for url, n in ((migrated_database_url, 1), (second_url, 2)):
            async with Database(url) as db, OutboxRelay(service, kafka_bootstrap, db, url) as relay:
                async with db.transaction() as conn:  # outbox id 1 in either database
                    await add_to_outbox(conn, service, topic, f"order-{n}", f"event-{n}", f"v-{n}".encode(), [])
                relay.wake()
                await until(lambda r=relay: r.published == 1, timeout_s=30, what=f"database {n}'s record")
    finally:
        await _second_database(servers.database_url, unique_name, create=False)
    values = [m.value() for m in read_topic(kafka_bootstrap, topic, expect=2, timeout_s=10)]
    assert values == [b"v-1", b"v-2"]


async def _second_database(server_url: str, unique_name: str, *, create: bool) -> str:
    """A second database on the same server, created fresh (``create``) or dropped."""
    import psycopg
    from psycopg import sql

    name = f"second_{unique_name.replace('.', '_').replace('-', '_')}"[:60]
    admin = psycopg.conninfo.make_conninfo(server_url, dbname="postgres")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if create:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)

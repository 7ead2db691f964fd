from __future__ import annotations

import psycopg
import pytest
from hookstream.db import Database, Migration, apply_migrations, bundled_migrations
from hookstream.errors import DatabaseUnavailable, MigrationError


async def test_bundled_migrations_apply_once(database_url: str) -> None:
    first = await apply_migrations(database_url)
    assert [m.version for m in first] == [m.version for m in bundled_migrations()]
    assert await apply_migrations(database_url) == []

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(v, n) for v, n in await cur.fetchall()] == [(m.version, m.name) for m in first]
        await conn.execute("INSERT INTO processed_events (service, event_id) VALUES ('normalizer', 'e1')")


async def test_failed_migration_rolls_back_and_is_not_recorded(database_url: str) -> None:
    good = Migration(1, "create_a", "CREATE TABLE a (id int PRIMARY KEY);")
    bad = Migration(2, "broken", "CREATE TABLE b (id int); INSERT INTO nowhere VALUES (1);")
    with pytest.raises(MigrationError, match="0002_broken failed"):
        await apply_migrations(database_url, [good, bad])

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        versions = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
        assert versions == [(1,)]
        tables = await (
            await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).fetchall()
        assert ("b",) not in tables

    fixed = Migration(2, "broken", "CREATE TABLE b (id int);")
    assert [m.version for m in await apply_migrations(database_url, [good, fixed])] == [2]


async def test_edited_migration_is_refused(database_url: str) -> None:
    await apply_migrations(database_url, [Migration(1, "create_a", "CREATE TABLE a (id int);")])
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(database_url, [Migration(1, "create_a", "CREATE TABLE a (id bigint);")])


async def test_pool_runs_transactions(database_url: str) -> None:
    await apply_migrations(database_url)
    async with Database(database_url) as db:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO processed_events (service, event_id) VALUES ('crm', 'e1')")
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO processed_events (service, event_id) VALUES ('crm', 'e2')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            await _insert_both(db, "e3", "e1")
        async with db.connection() as conn:
            rows = await (await conn.execute("SELECT event_id FROM processed_events ORDER BY 1")).fetchall()
    assert rows == [{"event_id": "e1"}, {"event_id": "e2"}]  # e3 rolled back with the failed e1


async def _insert_both(db: Database, first: str, second: str) -> None:
    async with db.transaction() as conn:
        for event_id in (first, second):
            await conn.execute("INSERT INTO processed_events (service, event_id) VALUES ('crm', %s)", (event_id,))


async def test_unreachable_database_fails_fast_with_the_address() -> None:
    from hookstream.settings import DatabaseSettings
    from hookstream_tools.devstack.process import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1:\d+/nothing did not accept connections"):
        await Database(url, DatabaseSettings(connect_timeout_ms=1500)).start()

"""An async psycopg connection pool with an explicit lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hookstream.errors import DatabaseUnavailable
from hookstream.lifecycle import Lifecycle
from hookstream.settings import DatabaseSettings


def redact(url: str) -> str:
    """The URL without its password, for error messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host", "?")
    return f"postgresql://{info.get('user', '')}@{host}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class Database(Lifecycle):
    def __init__(self, url: str, settings: DatabaseSettings | None = None) -> None:
        self.url = url
        self._settings = settings or DatabaseSettings()
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, object]]] | None = None

    async def start(self) -> None:
        if self._pool is not None:
            return
        s = self._settings
        pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, object]]] = AsyncConnectionPool(
            self.url,
            min_size=s.pool_min_size,
            max_size=s.pool_max_size,
            # Autocommit: a lone statement is one round trip, not BEGIN, statement, COMMIT (three);
            # ``transaction()`` is the way to make several statements one unit.
            kwargs={
                "row_factory": dict_row,
                "connect_timeout": max(1, s.connect_timeout_ms // 1000),
                "autocommit": True,
            },
            open=False,
            name="hookstream",
        )
        try:
            await pool.open(wait=True, timeout=s.connect_timeout_ms / 1000)
        except PoolTimeout as exc:
            await pool.close()
            raise DatabaseUnavailable(
                f"PostgreSQL at {redact(self.url)} did not accept connections within"
                f" {s.connect_timeout_ms} ms; check DATABASE_URL or start the local stack with `hookstream dev up`"
            ) from exc
        self._pool = pool

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ready(self) -> list[tuple[str, bool, str]]:
        try:
            async with asyncio.timeout(2.0), self.connection() as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # any failure means "not ready", with the reason
            return [("postgres", False, str(exc) or type(exc).__name__)]
        return [("postgres", True, f"answers at {redact(self.url)}")]

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
        """A pooled connection in autocommit mode: each statement is its own transaction."""
        if self._pool is None:
            raise DatabaseUnavailable("database pool is not started: call `await db.start()` first")
        async with self._pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self, *, pipeline: bool = False) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
        """``pipeline=True``: statements are sent without waiting for each result (psycopg's pipeline
        mode); reading a result, or the commit, waits for everything sent before it."""
        async with self.connection() as conn:
            if not pipeline:
                async with conn.transaction():
                    yield conn
                return
            async with conn.pipeline(), conn.transaction():
                yield conn


class BoundDatabase(Database):
    """A ``Database`` whose every connection is one already in a transaction: a store built on it writes
    inside the caller's unit of work (the admin records a change and its audit entry together)."""

    def __init__(self, conn: psycopg.AsyncConnection[dict[str, object]]) -> None:  # no pool, no settings
        self.url = ""
        self._pool = None
        self._conn = conn

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
        yield self._conn

    @asynccontextmanager
    async def transaction(self, *, pipeline: bool = False) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
        async with self._conn.transaction():  # a savepoint inside the caller's transaction
            yield self._conn

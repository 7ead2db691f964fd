"""Ordered plain-SQL migrations, recorded in ``schema_migrations``.

Files are ``NNNN_description.sql``, applied in number order, each in its own transaction.
Each component numbers its own: the library's shared runtime tables (``hookstream``) and
every service that registers migrations of its own (by its name). A session-level advisory
lock lets several services start at once without racing. An applied file that was edited
afterwards is an error: write a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from hookstream.errors import MigrationError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x686F6F6B  # "hook"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _parse(filename: str, sql: str) -> Migration:
    match = _NAME.match(filename)
    if not match:
        raise MigrationError(f"migration file {filename!r} must be named NNNN_description.sql")
    return Migration(int(match.group(1)), match.group(2), sql)


def load_migrations(directory: Path) -> list[Migration]:
    return _ordered([_parse(p.name, p.read_text()) for p in directory.glob("*.sql")])


def packaged_migrations(package: str) -> list[Migration]:
    """The ``.sql`` files in a package's ``migrations/`` folder, e.g. ``hookstream_services.crm``."""
    root = resources.files(package).joinpath("migrations")
    return _ordered([_parse(e.name, e.read_text()) for e in root.iterdir() if e.name.endswith(".sql")])


def bundled_migrations() -> list[Migration]:
    """The library's own: processed events, parked keys, orders, subscriptions, deliveries, outbox."""
    return packaged_migrations("hookstream.db")


def _ordered(migrations: list[Migration]) -> list[Migration]:
    migrations.sort(key=lambda m: m.version)
    seen: set[int] = set()
    for m in migrations:
        if m.version in seen:
            raise MigrationError(f"two migrations share version {m.version:04d}")
        seen.add(m.version)
    return migrations


LIBRARY = "hookstream"


async def apply_migrations(
    url: str, migrations: list[Migration] | None = None, *, component: str = LIBRARY
) -> list[Migration]:
    """Apply what is not applied yet of one component; return the migrations applied by this call."""
    migrations = bundled_migrations() if migrations is None else migrations
    applied_now: list[Migration] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            await _ensure_ledger(conn)
            cursor = await conn.execute(
                "SELECT version, name, checksum FROM schema_migrations WHERE component = %s", (component,)
            )
            done = {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}
            for m in migrations:
                label = f"{component} {m.version:04d}_{m.name}" if component != LIBRARY else f"{m.version:04d}_{m.name}"
                if m.version in done:
                    if done[m.version][1] != m.checksum:
                        raise MigrationError(
                            f"migration {label} was changed after it was applied;"
                            " add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(m.sql.encode())
                        await conn.execute(
                            """INSERT INTO schema_migrations (component, version, name, checksum)
                               VALUES (%s, %s, %s, %s)""",
                            (component, m.version, m.name, m.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {label} failed: {exc}") from exc
                log.info("migration applied", extra={"component": component, "version": m.version, "migration": m.name})
                applied_now.append(m)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


async def _ensure_ledger(conn: psycopg.AsyncConnection[Any]) -> None:
    """``schema_migrations`` keyed by (component, version); a ledger from before components gains the column."""
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               component text NOT NULL DEFAULT 'hookstream',
               version integer NOT NULL,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (component, version))"""
    )
    cur = await conn.execute(
        """SELECT count(*) FROM information_schema.key_column_usage
           WHERE table_name = 'schema_migrations' AND constraint_name = 'schema_migrations_pkey'
             AND column_name = 'component'"""
    )
    row = await cur.fetchone()
    if row is not None and row[0] == 0:
        async with conn.transaction():
            await conn.execute(
                "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS component text NOT NULL DEFAULT 'hookstream'"
            )
            await conn.execute(
                "ALTER TABLE schema_migrations DROP CONSTRAINT schema_migrations_pkey,"
                " ADD PRIMARY KEY (component, version)"
            )


async def pending_migrations(url: str, components: dict[str, list[Migration]]) -> list[str]:
    """``component NNNN_name`` of every migration not applied yet (nothing is changed)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cur.fetchone()
        done: set[tuple[str, int]] = set()
        if row is not None and row[0]:
            has_component = await (
                await conn.execute(
                    """SELECT count(*) FROM information_schema.columns
                       WHERE table_name = 'schema_migrations' AND column_name = 'component'"""
                )
            ).fetchone()
            query = (
                "SELECT component, version FROM schema_migrations"
                if has_component and has_component[0]
                else "SELECT 'hookstream', version FROM schema_migrations"
            )
            done = {(str(c), int(v)) for c, v in await (await conn.execute(query)).fetchall()}
    return [
        f"{component} {m.version:04d}_{m.name}"
        for component, migrations in components.items()
        for m in migrations
        if (component, m.version) not in done
    ]

"""Ordered plain-SQL migrations, recorded in ``schema_migrations``.

Files are ``NNNN_description.sql``, applied in number order, each in its own
transaction. A session-level advisory lock lets several services start at once
without racing. An applied file that was edited afterwards is an error: write a
new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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


def bundled_migrations() -> list[Migration]:
    root = resources.files("hookstream.db").joinpath("migrations")
    return _ordered([_parse(e.name, e.read_text()) for e in root.iterdir() if e.name.endswith(".sql")])


def _ordered(migrations: list[Migration]) -> list[Migration]:
    migrations.sort(key=lambda m: m.version)
    seen: set[int] = set()
    for m in migrations:
        if m.version in seen:
            raise MigrationError(f"two migrations share version {m.version:04d}")
        seen.add(m.version)
    return migrations


async def apply_migrations(url: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is not applied yet; return the migrations applied by this call."""
    migrations = bundled_migrations() if migrations is None else migrations
    applied_now: list[Migration] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            cursor = await conn.execute("SELECT version, name, checksum FROM schema_migrations")
            done = {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}
            for m in migrations:
                if m.version in done:
                    if done[m.version][1] != m.checksum:
                        raise MigrationError(
                            f"migration {m.version:04d}_{m.name} was changed after it was applied;"
                            " add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(m.sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (m.version, m.name, m.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc
                log.info("migration applied", extra={"version": m.version, "migration": m.name})
                applied_now.append(m)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now

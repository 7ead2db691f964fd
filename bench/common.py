"""What the benchmarks share: a fresh database per run and percentiles."""

from __future__ import annotations

import psycopg
from hookstream.db import apply_migrations
from psycopg import sql


async def fresh_database(base_url: str, name: str) -> str:
    """Create database ``name`` next to ``base_url``'s, migrate it, return its URL."""
    with psycopg.connect(psycopg.conninfo.make_conninfo(base_url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = psycopg.conninfo.make_conninfo(base_url, dbname=name)
    await apply_migrations(database_url)
    return database_url


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

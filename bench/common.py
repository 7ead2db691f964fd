"""What the benchmarks share: a fresh database per run, percentiles, delivery processes."""

from __future__ import annotations

import os
import subprocess
import sys

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


def start_delivery(
    bootstrap: str, database_url: str, name: str, processes: int = 1, extra: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    """`hookstream run delivery` processes reading ``<name>.canonical``, allowed to call loopback partners."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "HOOKSTREAM_DELIVERY_SERVICE_NAME": f"delivery-{name}",
        "HOOKSTREAM_DELIVERY_CANONICAL_TOPIC": f"{name}.canonical",
        "HOOKSTREAM_DELIVERY_DELIVERIES_TOPIC": f"{name}.deliveries",
        "HOOKSTREAM_DELIVERY_ALLOW_TARGETS": "loopback",
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    command = [sys.executable, "-m", "hookstream.cli", "run", "delivery"]
    return [subprocess.Popen(command, env=env) for _ in range(processes)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)

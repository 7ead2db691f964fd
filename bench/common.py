"""What the benchmarks share: a fresh database per run, percentiles and rates, a partner server,
delivery processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from aiohttp import web
from hookstream.consumer.metrics import percentile
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
    return percentile(sorted(values), q) if values else float("nan")


def steady_rate(arrivals: list[float]) -> float:
    """Per second, between the arrival of 10 % and of 90 % of them (start-up and tail left out)."""
    ordered = sorted(arrivals)
    n = len(ordered)
    return 0.8 * n / max(ordered[int(0.9 * n) - 1] - ordered[int(0.1 * n)], 1e-3)


async def serve(handle: Callable[[web.Request], Awaitable[web.Response]], host: str, port: int) -> web.AppRunner:
    """A partner endpoint: every POST path goes to ``handle``."""
    app = web.Application()
    app.router.add_post("/{path:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096).start()
    return runner


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
        "HOOKSTREAM_HEALTH_PORT": "0",
        "HOOKSTREAM_DELIVERY_DELIVERIES_TOPIC": f"{name}.deliveries",
        "HOOKSTREAM_DELIVERY_ALLOW_TARGETS": "loopback",
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    command = [sys.executable, "-m", "hookstream", "run", "delivery"]
    return [subprocess.Popen(command, env=env) for _ in range(processes)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def build_loadgen(out_dir: Path) -> Path:
    """Build bench/loadgen (Go), the open-loop fixed-rate HTTP generator, into ``out_dir``."""
    binary = out_dir / "loadgen"
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=Path(__file__).parent / "loadgen", check=True)
    return binary

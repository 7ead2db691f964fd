"""The pipeline rides out its infrastructure: while signed Shopify webhooks keep arriving, PostgreSQL
crashes (SIGQUIT, an immediate shutdown) twice and the Kafka broker is killed (SIGKILL) once, and
only those two are started again. No service may exit: each keeps its PID, becomes ready again,
and in the end every order's effects and partner deliveries happened exactly once and in order,
and nothing is left waiting in an outbox.

The test runs a Kafka and a PostgreSQL of its own (the session's are shared with other tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest
from hookstream.db import Database, apply_migrations
from hookstream.settings import StackSettings
from hookstream.store.subscriptions import SubscriptionStore
from hookstream_tools.devstack import DevStack
from hookstream_tools.devstack.process import free_port, pid_alive
from hookstream_tools.devstack.settings import DevStackSettings
from hookstream_tools.sandbox import SandboxServers

from tests.keys import KEYRING
from tests.order_load import (
    STEPS,
    Instance,
    ShopLoad,
    assert_delivered_once_in_order,
    assert_each_effect_once,
    effects_complete,
)
from tests.partner import running_partner
from tests.service_processes import logs, pipeline_env
from tests.signing import write_config
from tests.waiting import until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ORDERS_PER_S = 3
SERVICES = ("ingress", "normalizer", "delivery", "crm", "inventory", "risk", "fulfillment", "notifications", "admin")


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[DevStack]:
    settings = DevStackSettings(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
        kafka_heap="-Xms256m -Xmx512m",
    )
    stack = DevStack(settings, StackSettings(_env_file=None, KAFKA_BOOTSTRAP_SERVERS=None, DATABASE_URL=None))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


async def crash_postgres(stack: DevStack, down_s: float) -> None:
    """SIGQUIT to the postmaster: every backend dies at once, no checkpoint; then start it again
    (crash recovery)."""
    pid = stack.postgres.pid
    assert pid is not None
    os.kill(pid, signal.SIGQUIT)
    await until(lambda: not pid_alive(pid), 30, "PostgreSQL to die")
    await asyncio.sleep(down_s)
    await asyncio.to_thread(stack.postgres.start)
    await asyncio.to_thread(stack.postgres.wait_ready)


async def kill_broker(stack: DevStack, down_s: float) -> None:
    pid = stack.kafka.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await until(lambda: not pid_alive(pid), 30, "the broker to die")
    await asyncio.sleep(down_s)
    await asyncio.to_thread(stack.kafka.start)
    await asyncio.to_thread(stack.kafka.wait_ready)


def outbox_rows(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT service, count(*) FROM outbox GROUP BY service")]


async def test_services_ride_out_postgres_and_broker_crashes_losing_and_repeating_nothing(
    own_stack: DevStack, unique_name: str, tmp_path: Path, sandbox: SandboxServers
) -> None:
    status = own_stack.status()
    kafka, database_url = status.kafka_bootstrap_servers, status.database_url
    await apply_migrations(database_url)
    env, topics = pipeline_env(unique_name, sandbox)
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": database_url,
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
    }
    envs = {name: {**base, **env.get(name, {})} for name in SERVICES}
    envs["admin"]["HOOKSTREAM_ADMIN_PORT"] = str(free_port())
    config = write_config(tmp_path / "ingress.toml", topic=topics["raw"])
    running = {
        name: Instance(name, envs[name], tmp_path, 0, *(("--config", str(config)) if name == "ingress" else ()))
        for name in SERVICES
    }
    pids = {name: i.proc.pid for name, i in running.items()}

    async with running_partner() as partner, aiohttp.ClientSession() as http:
        async with Database(database_url) as db:
            await SubscriptionStore(db, KEYRING).add(name="erp", url=f"{partner.url}/erp", event_types=["order.*"])
        ingress = f"http://127.0.0.1:{running['ingress'].port}/webhooks/shopify"
        # A shop sends again what was not taken: 503 while the broker is away.
        load = ShopLoad(
            http,
            lambda: ingress,
            orders_per_s=ORDERS_PER_S,
            prefix="crash",
            first_number=7_800_000_000,
            retry_statuses=frozenset({500, 502, 503, 504}),
        )

        async def all_ready() -> bool:
            return all([await i.ready(http) for i in running.values()])

        try:
            await until(all_ready, 120, lambda: f"every service ready\n{logs(tmp_path)}")
            load.start()
            disturbances = [
                ("postgres", lambda: crash_postgres(own_stack, 2)),
                ("kafka", lambda: kill_broker(own_stack, 3)),
                ("postgres", lambda: crash_postgres(own_stack, 2)),
            ]
            for what, disturb in disturbances:
                await asyncio.sleep(6)  # steady traffic before each crash
                before = len(load.accepted)
                await disturb()
                await until(all_ready, 120, lambda w=what: f"every service ready after {w} restarted\n{logs(tmp_path)}")
                await asyncio.sleep(4)
                assert len(load.accepted) > before, f"no webhook was taken after the {what} restart"
            await load.stop()

            def all_done() -> bool:
                return len(partner.at("/erp")) >= len(load.accepted) and effects_complete(sandbox, len(load.orders))

            started = time.monotonic()
            await until(all_done, 300, lambda: f"every effect; partner has {len(partner.at('/erp'))}\n{logs(tmp_path)}")
            print(f"settled {time.monotonic() - started:.1f} s after the load stopped")
            outboxes = lambda: outbox_rows(database_url)  # noqa: E731
            await until(lambda: outboxes() == [], 30, lambda: f"empty outboxes: {outboxes()}")
            await asyncio.sleep(3)  # anything more would be a repeat
            exited = {name: i.proc.poll() for name, i in running.items() if i.proc.poll() is not None}
            assert exited == {}, f"services exited: {exited}\n{logs(tmp_path)}"
            assert {name: i.proc.pid for name, i in running.items()} == pids
        finally:
            load.abandon()
            for instance in running.values():
                instance.proc.send_signal(signal.SIGTERM)
            for instance in running.values():
                instance.proc.wait(45)

    received = partner.at("/erp")
    repeats = len(received) - len({r["headers"].get("webhook-id") for r in received})
    mail_repeats = len(sandbox.sandbox.emails) - len({e["message_id"] for e in sandbox.sandbox.emails})
    print(f"{len(load.accepted)} webhooks accepted, {load.resent} sent again by the shop;")
    print(f"sent again after a crash: {repeats} partner deliveries (same webhook-id), {mail_repeats} e-mails")
    assert load.refused == []
    orders = load.orders
    assert len(load.accepted) == len(orders) * len(STEPS) > 60
    # A database crash between a partner's (or a mail server's) answer and the commit that records it
    # makes the step run again: HTTP and SMTP have no exactly-once. What is sent again is the same
    # message (webhook-id, Message-ID), which is what receivers dedupe on; the calls with an
    # Idempotency-Key (CRM, ERP, warehouse, SMS) are counted once by the systems themselves.
    assert_delivered_once_in_order(received, orders, by_webhook_id=True)
    assert_each_effect_once(sandbox, orders, mail_by_message_id=True)

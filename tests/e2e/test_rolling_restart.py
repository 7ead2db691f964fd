"""A rolling restart under steady load: while signed Shopify webhooks keep arriving (orders created,
paid and fulfilled, each in turn), every service (ingress, normalizer, delivery and the five
workflows) is replaced in turn the way a Deployment with maxSurge 1 and maxUnavailable 0 does it: a
new process starts and is ready, then the old one gets SIGTERM and drains. Nothing is lost, no
effect happens twice (partner deliveries, CRM, ERP, warehouse, SMS, e-mail), and each order's
events reach the partner in order."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
from hookstream.db import Database
from hookstream.store.subscriptions import SubscriptionStore
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

ORDERS_PER_S = 4
ROLLED = ("ingress", "normalizer", "delivery", "crm", "inventory", "risk", "fulfillment", "notifications")


async def test_a_rolling_restart_under_load_loses_nothing_repeats_nothing_and_keeps_order(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path, sandbox: SandboxServers
) -> None:
    env, topics = pipeline_env(unique_name, sandbox)
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
    }
    envs = {name: {**base, **env.get(name, {})} for name in ROLLED}
    config = write_config(tmp_path / "ingress.toml", topic=topics["raw"])
    args = {"ingress": ("--config", str(config))}
    running = {name: Instance(name, envs[name], tmp_path, 0, *args.get(name, ())) for name in ROLLED}
    rolled: list[tuple[str, int]] = []

    async with running_partner() as partner, Database(migrated_database_url) as db, aiohttp.ClientSession() as http:
        await SubscriptionStore(db, KEYRING).add(name="erp", url=f"{partner.url}/erp", event_types=["order.*"])
        # The running ingress, as a Service routes to a ready pod; a closed connection is retried as
        # Shopify retries (the normalizer dedupes a webhook that got in twice).
        load = ShopLoad(
            http,
            lambda: f"http://127.0.0.1:{running['ingress'].port}/webhooks/shopify",
            orders_per_s=ORDERS_PER_S,
            prefix="roll",
            first_number=7_700_000_000,
        )
        try:

            async def all_ready() -> bool:
                return all([await i.ready(http) for i in running.values()])

            await until(all_ready, 90, lambda: f"every service ready\n{logs(tmp_path)}")
            load.start()
            await asyncio.sleep(3)  # steady traffic before the first restart
            for generation, name in enumerate(ROLLED, start=1):
                fresh = Instance(name, envs[name], tmp_path, generation, *args.get(name, ()))
                await until(lambda f=fresh: f.ready(http), 60, lambda n=name: f"the new {n} ready\n{logs(tmp_path)}")
                old, running[name] = running[name], fresh
                started, before = time.monotonic(), len(load.accepted)
                rolled.append((name, await old.drain()))  # SIGTERM: stop fetching, finish, commit, close
                assert time.monotonic() - started < 45, f"{name} did not drain within its grace period"
                await asyncio.sleep(2)
                assert len(load.accepted) > before, f"no webhook arrived while {name} was replaced"
            await asyncio.sleep(2)  # traffic after the last restart too
            await load.stop()

            def all_done() -> bool:
                return len(partner.at("/erp")) >= len(load.accepted) and effects_complete(sandbox, len(load.orders))

            await until(all_done, 180, lambda: f"every effect; partner has {len(partner.at('/erp'))}")
            await asyncio.sleep(3)  # anything more would be a repeat
        finally:
            load.abandon()
            for instance in running.values():
                instance.proc.send_signal(signal.SIGTERM)
            for instance in running.values():
                instance.proc.wait(45)

    print(f"{len(load.accepted)} webhooks accepted, {load.resent} sent again after a stopping ingress closed them")
    assert rolled == [(name, 0) for name in ROLLED]  # each drained and exited cleanly
    assert load.refused == []
    orders = load.orders
    assert len(load.accepted) == len(orders) * len(STEPS) > 100  # steady load through every restart
    assert_delivered_once_in_order(partner.at("/erp"), orders)
    assert_each_effect_once(sandbox, orders)  # across the restarts

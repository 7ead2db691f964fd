"""A rolling restart under steady load: while signed Shopify webhooks keep arriving (orders created,
paid and fulfilled, each in turn), every service (ingress, normalizer, delivery and the five
workflows) is replaced in turn the way a Deployment with maxSurge 1 and maxUnavailable 0 does it: a
new process starts and is ready, then the old one gets SIGTERM and drains. Nothing is lost, no
effect happens twice (partner deliveries, CRM, ERP, warehouse, SMS, e-mail), and each order's
events reach the partner in order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
from hookstream.db import Database
from hookstream.store.subscriptions import SubscriptionStore
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers

from tests.partner import running_partner
from tests.service_processes import logs, pipeline_env
from tests.signing import load_sample, sign, write_config
from tests.waiting import until

ORDERS_PER_S = 4
STEPS = ("shopify_orders_create", "shopify_orders_paid", "shopify_orders_fulfilled")
ROLLED = ("ingress", "normalizer", "delivery", "crm", "inventory", "risk", "fulfillment", "notifications")


# What each order makes happen in the systems the workflows call, besides its three partner deliveries.
PER_ORDER = {
    "crm": 4,  # contact and order upserted; paid and fulfilled patched
    "erp": 2,  # stock reserved, then taken on payment
    "warehouse": 2,  # the order noticed; the fulfillment requested after payment (risk cleared it)
    "sms": 1,  # shipped
    "email": 3,  # thank you; payment received with the invoice; on its way
}


def effects(sandbox: SandboxServers) -> dict[str, list[str]]:
    """Per kind, one entry per effect applied (a call answered 2xx and not replayed by its
    idempotency key; an e-mail accepted), naming its idempotency key or subject, so repeats show."""
    made: dict[str, list[str]] = {kind: [] for kind in PER_ORDER}
    for c in sandbox.sandbox.calls:
        if 200 <= c.status < 300 and not c.replayed and c.system in made:
            made[c.system].append(f"{c.idempotency_key} {c.method} {c.path} {json.dumps(c.body, sort_keys=True)}")
    made["email"] = [e["subject"] for e in sandbox.sandbox.emails]
    return made


class Instance:
    """One `hookstream run <service>` process with a probe port of its own (ingress: its own port)."""

    def __init__(self, name: str, env: dict[str, str], folder: Path, generation: int, *extra: str) -> None:
        self.name = name
        self.port = free_port()
        self.log = folder / f"{name}-{generation}.log"
        port = "--port" if name == "ingress" else "--health-port"
        command = [sys.executable, "-m", "hookstream", "run", name, port, str(self.port), *extra]
        self.proc = subprocess.Popen(command, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        assert self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()[-2000:]}"
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/readyz") as answer:
                return answer.status == 200
        except aiohttp.ClientError:
            return False

    async def drain(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 45)


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
    templates = {step: load_sample(step) for step in STEPS}
    accepted: list[tuple[str, str]] = []  # (order number, webhook id), in the order ingress took them
    refused: list[tuple[str, int]] = []
    resent = 0  # requests the platform would retry: the connection to a stopping ingress closed
    running = {name: Instance(name, envs[name], tmp_path, 0, *args.get(name, ())) for name in ROLLED}
    rolled: list[tuple[str, int]] = []

    async def send_order(http: aiohttp.ClientSession, number: int) -> None:
        for step in STEPS:  # one after the other, as a shop sends them
            headers, template = templates[step]
            payload = json.loads(template)
            payload["id"] = number
            webhook_id = f"roll-{number}-{step}"
            body = json.dumps(payload).encode()
            signed = sign("shopify", {**headers, "X-Shopify-Webhook-Id": webhook_id}, body)
            status = 0
            for _ in range(100):
                # The running ingress, as a Service routes to a ready pod; a closed connection is
                # retried as Shopify retries (the normalizer dedupes a webhook that got in twice).
                url = f"http://127.0.0.1:{running['ingress'].port}/webhooks/shopify"
                try:
                    async with http.post(url, data=body, headers=signed) as answer:
                        status = answer.status
                    break
                except aiohttp.ClientConnectionError:
                    nonlocal resent
                    resent += 1
                    await asyncio.sleep(0.1)
            if status != 200:
                refused.append((webhook_id, status))
                return
            accepted.append((str(number), webhook_id))

    async with running_partner() as partner, Database(migrated_database_url) as db, aiohttp.ClientSession() as http:
        await SubscriptionStore(db).add(name="erp", url=f"{partner.url}/erp", event_types=["order.*"])
        try:

            async def all_ready() -> bool:
                return all([await i.ready(http) for i in running.values()])

            await until(all_ready, 90, lambda: f"every service ready\n{logs(tmp_path)}")
            stop_load = asyncio.Event()

            async def load() -> None:
                orders: set[asyncio.Task[None]] = set()
                number = 7_700_000_000
                while not stop_load.is_set():
                    number += 1
                    orders.add(asyncio.create_task(send_order(http, number)))
                    await asyncio.sleep(1 / ORDERS_PER_S)
                await asyncio.gather(*orders)

            sending = asyncio.create_task(load())
            await asyncio.sleep(3)  # steady traffic before the first restart
            for generation, name in enumerate(ROLLED, start=1):
                fresh = Instance(name, envs[name], tmp_path, generation, *args.get(name, ()))
                await until(lambda f=fresh: f.ready(http), 60, lambda n=name: f"the new {n} ready\n{logs(tmp_path)}")
                old, running[name] = running[name], fresh
                started, before = time.monotonic(), len(accepted)
                rolled.append((name, await old.drain()))  # SIGTERM: stop fetching, finish, commit, close
                assert time.monotonic() - started < 45, f"{name} did not drain within its grace period"
                await asyncio.sleep(2)
                assert len(accepted) > before, f"no webhook arrived while {name} was replaced"
            await asyncio.sleep(2)  # traffic after the last restart too
            stop_load.set()
            await sending

            def effects_done() -> bool:
                made = effects(sandbox)
                return len(partner.at("/erp")) >= len(accepted) and all(
                    len(made[kind]) >= per_order * len(accepted) // len(STEPS) for kind, per_order in PER_ORDER.items()
                )

            await until(effects_done, 180, lambda: f"every effect; partner has {len(partner.at('/erp'))}")
            await asyncio.sleep(3)  # anything more would be a repeat
        finally:
            for instance in running.values():
                instance.proc.send_signal(signal.SIGTERM)
            for instance in running.values():
                instance.proc.wait(45)

    print(f"{len(accepted)} webhooks accepted, {resent} sent again after a stopping ingress closed the connection")
    assert rolled == [(name, 0) for name in ROLLED]  # each drained and exited cleanly
    assert refused == []
    orders = {number for number, _ in accepted}
    assert len(accepted) == len(orders) * len(STEPS) > 100  # steady load through every restart
    received = [json.loads(r["body"]) for r in partner.at("/erp")]
    ids = Counter(r["headers"].get("webhook-id") for r in partner.at("/erp"))
    assert ids.most_common(1)[0][1] == 1, "a partner delivery was repeated"
    per_order: dict[str, list[int]] = {}
    for event in received:
        per_order.setdefault(event["order_id"], []).append(event["sequence"])
    assert set(per_order) == {f"shopify:{n}" for n in orders}  # nothing lost
    assert all(seq == [1, 2, 3] for seq in per_order.values()), {o: s for o, s in per_order.items() if s != [1, 2, 3]}
    # Every workflow's effects for every order, each once across the restarts.
    made = effects(sandbox)
    for kind, per_order in PER_ORDER.items():
        assert len(made[kind]) == per_order * len(orders), (kind, len(made[kind]))
        assert Counter(made[kind]).most_common(1)[0][1] == 1, f"a {kind} effect happened twice"
        assert {o for o in orders if any(o in effect for effect in made[kind])} == orders, f"{kind}: an order missed"

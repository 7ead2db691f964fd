"""Steady Shopify order traffic through a whole pipeline of `hookstream run` processes, and what it
made happen: the shared part of the end-to-end tests that disturb the pipeline while orders flow
(a rolling restart, a database or broker crash)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers

from tests.signing import load_sample, sign

STEPS = ("shopify_orders_create", "shopify_orders_paid", "shopify_orders_fulfilled")

# What each order makes happen in the systems the workflows call, besides its three partner deliveries.
PER_ORDER = {
    "crm": 4,  # contact and order upserted; paid and fulfilled patched
    "erp": 2,  # stock reserved, then taken on payment
    "warehouse": 2,  # the order noticed; the fulfillment requested after payment (risk cleared it)
    "sms": 1,  # shipped
    "email": 3,  # thank you; payment received with the invoice; on its way
}


def effects(sandbox: SandboxServers, *, mail_by_message_id: bool = False) -> dict[str, list[str]]:
    """Per kind, one entry per effect applied (a call answered 2xx and not replayed by its
    idempotency key; an e-mail accepted), naming its idempotency key or subject, so repeats show.

    ``mail_by_message_id``: e-mails as a mailbox that dedupes on Message-ID sees them (one entry per
    Message-ID: a message sent again after a crash carries the same id)."""
    made: dict[str, list[str]] = {kind: [] for kind in PER_ORDER}
    for c in sandbox.sandbox.calls:
        if 200 <= c.status < 300 and not c.replayed and c.system in made:
            made[c.system].append(f"{c.idempotency_key} {c.method} {c.path} {json.dumps(c.body, sort_keys=True)}")
    emails = sandbox.sandbox.emails
    if mail_by_message_id:
        emails = list({e["message_id"]: e for e in reversed(emails)}.values())
    made["email"] = [e["subject"] for e in emails]
    return made


def effects_complete(sandbox: SandboxServers, orders: int) -> bool:
    made = effects(sandbox)
    return all(len(made[kind]) >= per_order * orders for kind, per_order in PER_ORDER.items())


def assert_each_effect_once(sandbox: SandboxServers, orders: set[str], *, mail_by_message_id: bool = False) -> None:
    """Every workflow's effects for every order, each exactly once."""
    made = effects(sandbox, mail_by_message_id=mail_by_message_id)
    for kind, per_order in PER_ORDER.items():
        assert len(made[kind]) == per_order * len(orders), (kind, len(made[kind]))
        assert Counter(made[kind]).most_common(1)[0][1] == 1, f"a {kind} effect happened twice"
        assert {o for o in orders if any(o in effect for effect in made[kind])} == orders, f"{kind}: an order missed"


def assert_delivered_once_in_order(
    received: list[dict[str, Any]], orders: set[str], *, by_webhook_id: bool = False
) -> None:
    """Each order's three events reached the partner once each, in order.

    ``by_webhook_id``: as a partner that dedupes on ``webhook-id`` (as Standard Webhooks asks) sees
    them: a repeat must be the same message (same id, same body), and order is that of first arrivals."""
    if by_webhook_id:
        first: dict[str, dict[str, Any]] = {}
        for r in received:
            seen = first.setdefault(r["headers"].get("webhook-id"), r)
            assert seen["body"] == r["body"], "a webhook id was sent again with another body"
        received = list(first.values())
    ids = Counter(r["headers"].get("webhook-id") for r in received)
    assert ids.most_common(1)[0][1] == 1, "a partner delivery was repeated"
    per_order: dict[str, list[int]] = {}
    for event in (json.loads(r["body"]) for r in received):
        per_order.setdefault(event["order_id"], []).append(event["sequence"])
    assert set(per_order) == {f"shopify:{n}" for n in orders}  # nothing lost
    assert all(seq == [1, 2, 3] for seq in per_order.values()), {o: s for o, s in per_order.items() if s != [1, 2, 3]}


class Instance:
    """One `hookstream run <service>` process with a probe port of its own (ingress: its own port)."""

    def __init__(self, name: str, env: dict[str, str], folder: Path, generation: int, *extra: str) -> None:
        self.name = name
        self.port = free_port()
        self.log = folder / f"{name}-{generation}.log"
        # Ingress: webhooks on its own port (probes answer there too), /metrics on a probe port of its own.
        port = (
            ["--port", str(self.port), "--health-port", "0"] if name == "ingress" else ["--health-port", str(self.port)]
        )
        command = [sys.executable, "-m", "hookstream", "run", name, *port, *extra]
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


class ShopLoad:
    """A shop sending each order's webhooks (created, paid, fulfilled) one after another, a new order
    every ``1 / orders_per_s`` seconds, to whatever ingress ``url()`` names at the time.

    As Shopify does, a webhook whose answer is not 200 (or whose connection closed) is sent again,
    with the same webhook id, after a pause; ``retry_statuses`` are the answers that are retried
    rather than counted as refused."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: Callable[[], str],
        *,
        orders_per_s: float,
        prefix: str,
        first_number: int,
        retry_statuses: frozenset[int] = frozenset(),
    ) -> None:
        self.http = http
        self.url = url
        self.orders_per_s = orders_per_s
        self.prefix = prefix
        self.number = first_number
        self.retry_statuses = retry_statuses
        self.templates = {step: load_sample(step) for step in STEPS}
        self.accepted: list[tuple[str, str]] = []  # (order number, webhook id), in the order ingress took them
        self.refused: list[tuple[str, int]] = []
        self.resent = 0  # requests sent again after a closed connection or a retried status
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._orders: set[asyncio.Task[None]] = set()

    @property
    def orders(self) -> set[str]:
        return {number for number, _ in self.accepted}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop starting orders and wait until every started one has all its webhooks taken."""
        self._stop.set()
        if self._task is not None:
            await self._task

    def abandon(self) -> None:
        """Stop sending at once (a test that failed)."""
        for task in [self._task, *self._orders]:
            if task is not None:
                task.cancel()

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.number += 1
            self._orders.add(asyncio.create_task(self._send_order(self.number)))
            await asyncio.sleep(1 / self.orders_per_s)
        await asyncio.gather(*self._orders)

    async def _send_order(self, number: int) -> None:
        for step in STEPS:  # one after the other, as a shop sends them
            headers, template = self.templates[step]
            payload = json.loads(template)
            payload["id"] = number
            webhook_id = f"{self.prefix}-{number}-{step}"
            body = json.dumps(payload).encode()
            signed = sign("shopify", {**headers, "X-Shopify-Webhook-Id": webhook_id}, body)
            status = 0
            for _ in range(600):
                try:
                    async with self.http.post(self.url(), data=body, headers=signed) as answer:
                        status = answer.status
                    if status not in self.retry_statuses:
                        break
                except aiohttp.ClientConnectionError:
                    pass
                self.resent += 1
                await asyncio.sleep(0.2)
            if status != 200:
                self.refused.append((webhook_id, status))
                return
            self.accepted.append((str(number), webhook_id))

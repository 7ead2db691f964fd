"""``make run`` / ``hookstream demo``: the whole pipeline on one machine, with a partner that checks signatures.

Starts (or reuses) the local stack, runs ingress, normalizer, delivery and every workflow as
`hookstream run` processes (the workflows against the sandbox, in this process), subscribes a demo
partner endpoint, sends every sample webhook signed with its channel's scheme, and prints what
reached the partner, order by order, with each signature verified by the official
``standardwebhooks`` library; then, per order, what the CRM, ERP, warehouse, risk platform, mail and
SMS got, with the invoices written out as PDF files. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from hookstream import signatures
from hookstream.db import Database, apply_migrations
from hookstream.errors import HookstreamError
from hookstream.secretbox import SecretsSettings
from hookstream.store.subscriptions import SubscriptionStore
from hookstream.store.tokens import TokenStore
from standardwebhooks import Webhook, WebhookVerificationError

from hookstream_tools.demo.story import story
from hookstream_tools.sandbox import Sandbox, SandboxServers

SERVICES = ("ingress", "normalizer", "delivery", "crm", "inventory", "notifications", "risk", "fulfillment", "admin")
PARTNER = "demo-partner"
CHANNELS = {  # sample file prefix → (channel, signing scheme)
    "shopify": ("shopify", "shopify"),
    "woocommerce": ("woocommerce", "woocommerce"),
    "stripe": ("stripe", "stripe"),
    "custom": ("b2b-portal", "standard"),
}

KINDS = dict(CHANNELS.values())


@dataclass
class PartnerLog:
    secret: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    story: list[str] = field(default_factory=list)  # per order, what the workflows' systems got
    rejected: int = 0
    on_event: Callable[[dict[str, Any]], None] = lambda e: None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = Webhook(self.secret).verify(body, {k.lower(): v for k, v in request.headers.items()})
        except WebhookVerificationError:
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        self.received.append(event)
        self.on_event(event)
        return web.Response(text="ok")


def samples() -> list[tuple[str, dict[str, str], bytes]]:
    """(channel, headers, body) of every bundled sample, in a story order: created first."""
    root = resources.files("hookstream_tools.demo").joinpath("samples")
    order = [
        "shopify_orders_create",
        "shopify_orders_paid",
        "stripe_payment_intent_succeeded",
        "shopify_orders_fulfilled",
        "woocommerce_order_created",
        "custom_order_created",
    ]
    loaded = []
    for name in order:
        data = json.loads(root.joinpath(f"{name}.json").read_text())
        loaded.append((CHANNELS[name.split("_", 1)[0]][0], dict(data["headers"]), json.dumps(data["body"]).encode()))
    return loaded


def channel_secrets() -> dict[str, str]:
    return {
        "shopify": secrets.token_hex(16),
        "woocommerce": secrets.token_hex(16),
        "stripe": "whsec_" + secrets.token_hex(16),
        "b2b-portal": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    }


def write_config(path: Path, channel_keys: dict[str, str]) -> Path:
    lines = ["[ingress]\ntopic_partitions = 6\n"]
    for channel, kind in CHANNELS.values():
        lines.append(f'[channels.{channel}]\nkind = "{kind}"\nsecrets = ["{channel_keys[channel]}"]\n')
        if kind == "standard":
            lines.append('event_type_field = "type"\norder_id_field = "data.order_id"\n')
        if kind == "stripe":
            lines.append('order_channel = "shopify"\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - our own URL
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_ready(port: int, procs: list[subprocess.Popen[bytes]], logs: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in zip(SERVICES, procs, strict=True):
            if proc.poll() is not None:
                raise HookstreamError(f"`hookstream run {name}` exited with {proc.returncode}; see {logs}/{name}.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise HookstreamError(f"ingress was not ready on port {port} within {timeout_s:.0f} s")


async def run(
    bootstrap: str,
    database_url: str,
    state_dir: Path,
    *,
    ingress_port: int,
    partner_port: int,
    once: bool,
    admin_port: int = 8070,
    say: Callable[[str], None],
    secrets_keys: str,
    quiet_s: float = 4.0,
) -> PartnerLog:
    """Run the pipeline; with ``once``, return when the partner has been quiet for ``quiet_s``.

    ``secrets_keys`` (HOOKSTREAM_SECRETS_KEYS, the local stack's dev key unless the environment gives one)
    seals the demo partner's secret, and the services started here get it too."""
    keyring = SecretsSettings(_env_file=None, keys=secrets_keys).keyring()
    keyring.require()
    await apply_migrations(database_url)
    partner = PartnerLog()
    async with Database(database_url) as db:
        store = SubscriptionStore(db, keyring)
        url = f"http://127.0.0.1:{partner_port}/webhooks"
        existing = [s for s in await store.list() if s.name == PARTNER]
        if existing:
            sub = await store.update(existing[0].id, url=url, event_types=["order.*"])
            if not sub.enabled:
                sub = await store.set_enabled(sub.id, True)
        else:
            sub = await store.add(name=PARTNER, url=url, event_types=["order.*"])
        _, admin_token = await TokenStore(db).create("make run", "admin")
    partner.secret = sub.signing_secrets()[0]

    def show(event: dict[str, Any]) -> None:
        say(f"  partner ← {event['order_id']:32} #{event['sequence']} {event['type']:22} signature verified")

    partner.on_event = show
    app = web.Application()
    app.router.add_post("/webhooks", partner.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", partner_port).start()

    keys = channel_secrets()
    config = write_config(state_dir / "demo" / "hookstream.toml", keys)
    sandbox = SandboxServers(Sandbox())  # the CRM, ERP, warehouse, risk platform, SMS and mail of the workflows
    await sandbox.start()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "HOOKSTREAM_CONFIG": str(config),
        "HOOKSTREAM_SECRETS_KEYS": secrets_keys,
        "HOOKSTREAM_DELIVERY_ALLOW_TARGETS": "loopback",
        "HOOKSTREAM_LOG_LEVEL": os.environ.get("HOOKSTREAM_LOG_LEVEL", "WARNING"),
        "HOOKSTREAM_CRM_URL": sandbox.url("crm"),
        "HOOKSTREAM_INVENTORY_URL": sandbox.url("erp"),
        "HOOKSTREAM_RISK_URL": sandbox.url("risk"),
        "HOOKSTREAM_FULFILLMENT_URL": sandbox.url("warehouse"),
        "HOOKSTREAM_NOTIFICATIONS_SMS_URL": sandbox.url("sms"),
        "HOOKSTREAM_ADMIN_PORT": str(admin_port),
        "HOOKSTREAM_ADMIN_ALLOW_TARGETS": "loopback",  # the demo partner listens on 127.0.0.1
    }
    for service in ("NOTIFICATIONS", "FULFILLMENT"):
        env[f"HOOKSTREAM_{service}_SMTP_HOST"] = sandbox.host
        env[f"HOOKSTREAM_{service}_SMTP_PORT"] = str(sandbox.smtp_port)
        env[f"HOOKSTREAM_{service}_SENDER"] = "Demo Shop <orders@demo-shop.example>"
    procs: list[subprocess.Popen[bytes]] = []
    logs = state_dir / "demo"
    try:
        for name in SERVICES:
            extra = ["--port", str(ingress_port)] if name == "ingress" else []
            log_file = (logs / f"{name}.log").open("ab")
            procs.append(
                subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
                    [sys.executable, "-m", "hookstream", "run", name, *extra],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
        await asyncio.to_thread(wait_ready, ingress_port, procs, logs)
        say(f"{', '.join(SERVICES)} are running (logs in {logs}/)")
        say(
            "the sandbox plays their CRM, ERP, warehouse, risk platform, SMS and mail:"
            f" {sandbox.http_url}/_sandbox/summary"
        )
        say(
            f"the dashboard: http://127.0.0.1:{admin_port}/ (sign in with the token {admin_token})\n"
            f"  the admin API: http://127.0.0.1:{admin_port}/api/v1 with the same token,"
            f" e.g. curl -H 'Authorization: Bearer {admin_token}' http://127.0.0.1:{admin_port}/api/v1/deliveries"
        )
        for channel, headers, body in samples():
            status = await asyncio.to_thread(
                post,
                f"http://127.0.0.1:{ingress_port}/webhooks/{channel}",
                body,
                signatures.sign_as(KINDS[channel], keys[channel], headers, body, int(time.time())),
            )
            say(f"  {channel:12} → ingress {status}")
        world = sandbox.sandbox

        def progress() -> int:
            return len(partner.received) + len(world.calls) + len(world.emails)

        last = (progress(), time.monotonic())
        while True:
            await asyncio.sleep(0.25)
            if progress() != last[0]:
                last = (progress(), time.monotonic())
            if once and partner.received and time.monotonic() - last[1] > quiet_s:
                break
            for name, proc in zip(SERVICES, procs, strict=True):
                if proc.poll() is not None:
                    raise HookstreamError(
                        f"`hookstream run {name}` stopped with {proc.returncode}; see {logs}/{name}.log"
                    )
        orders = list(dict.fromkeys(e["order_id"] for e in partner.received))
        partner.story = await story(world, database_url, orders, logs / "invoices")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await runner.cleanup()
        await sandbox.stop()
    return partner

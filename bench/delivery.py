"""Delivery throughput and added latency to a fast local partner, with bare aiohttp POSTs as the ceiling.

    python bench/delivery.py [--orders 5000] [--rate 500] [--duration 10]

Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (or .hookstream/stack.env: run `hookstream dev up`).
Each run gets its own topics, database and subscription. Phases:
1. ceiling: the same partner endpoint hit by plain aiohttp POSTs, 200 at a time;
2. backlog: `hookstream run delivery` drains orders x 3 canonical events; deliveries/s between
   10 % and 90 % of them arriving at the partner;
3. latency: canonical events at a fixed rate; added latency = arrival at the partner - the
   moment the event was published to orders.events.v1 (fan-out, signing, HTTP included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hookstream.avro import SchemaStore  # noqa: E402
from hookstream.db import Database  # noqa: E402
from hookstream.errors import HookstreamError  # noqa: E402
from hookstream.kafka import Producer, TopicAdmin, TopicSpec  # noqa: E402
from hookstream.kafka.headers import EVENT_ID  # noqa: E402
from hookstream.secretbox import SecretsSettings  # noqa: E402
from hookstream.settings import StackSettings  # noqa: E402
from hookstream.store.subscriptions import SubscriptionStore  # noqa: E402
from hookstream_tools.devstack.process import free_port  # noqa: E402

from bench.common import fresh_database, pct, serve, start_delivery, steady_rate, stop  # noqa: E402

CANONICAL = SchemaStore.bundled().serde("orders.events.v1")
TYPES = ("order.created", "order.paid", "order.fulfilled")


def event(event_id: str, order: int, sequence: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "event_id": event_id,
        "order_id": f"shopify:{order}",
        "sequence": sequence,
        "channel": "shopify",
        "type": TYPES[sequence - 1],
        "status": TYPES[sequence - 1].split(".")[1],
        "occurred_at": now,
        "received_at": now,
        "currency": "EUR",
        "amounts": {"total": "63.71", "subtotal": None, "tax": None, "shipping": None, "discount": None, "paid": None},
        "customer": {"id": "7012345678901", "email": "ana.silva@example.com", "name": "Ana Silva", "company": None},
        "items": [{"sku": "TSHIRT-BLK-M", "title": "Logo T-Shirt", "quantity": 2, "unit_price": "19.90"}],
        "shipping_address": None,
        "billing_address": None,
        "tracking": [],
        "payment_reference": None,
    }


def queue_event(producer: Producer, topic: str, e: dict[str, Any]) -> asyncio.Future[Any]:
    """Send one canonical event keyed by its order; the future resolves on the broker's acknowledgement."""
    return producer.send_nowait(
        topic, CANONICAL.encode(e), key=e["order_id"], headers=[(EVENT_ID, e["event_id"].encode())]
    )


class Partner:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.latencies_ms: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        self.arrivals.append(time.monotonic())
        if request.headers.get("X-Bench-Phase") == "ceiling":
            return web.Response(text="ok")
        payload = json.loads(body)
        if payload["event_id"].startswith("l"):
            sent = datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00")).timestamp()
            self.latencies_ms.append((now - sent) * 1000)
        return web.Response(text="ok")


async def ceiling(url: str, count: int) -> float:
    body = json.dumps({"event_id": "c", "type": "order.paid"}).encode()
    sem = asyncio.Semaphore(200)
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with sem, session.post(url, data=body, headers={"X-Bench-Phase": "ceiling"}) as r:
                await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=500, help="events/s in the latency phase")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1, help="`hookstream run delivery` processes in the group")
    args = parser.parse_args()
    stack = StackSettings()
    bootstrap, base_url = stack.require_kafka(), stack.require_database()
    name = f"dbench{int(time.time())}"
    database_url = await fresh_database(base_url, name)
    canonical_topic = f"{name}.canonical"
    TopicAdmin(bootstrap).ensure_topics([TopicSpec(canonical_topic, 6, 3_600_000)])

    partner = Partner()
    port = free_port()
    runner = await serve(partner.handle, "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/hooks"
    ceiling_rate = await ceiling(url, 10_000)
    partner.arrivals.clear()

    async with Database(database_url) as db:
        await SubscriptionStore(db, SecretsSettings().keyring()).add(name="bench", url=url, event_types=["order.*"])
    backlog = args.orders * 3
    async with Producer(bootstrap) as producer:
        pending = []
        for n in range(args.orders):
            for seq in (1, 2, 3):
                pending.append(queue_event(producer, canonical_topic, event(f"b{n}-{seq}", n, seq)))
        await asyncio.gather(*pending)

        procs = start_delivery(bootstrap, database_url, name, args.processes)
        try:
            started = time.monotonic()
            peak_rss = 0.0
            while len(partner.arrivals) < backlog and time.monotonic() - started < 600:
                rss = sum(psutil.Process(p.pid).memory_info().rss for p in procs)
                peak_rss = max(peak_rss, rss / 2**20)
                await asyncio.sleep(0.25)
            if len(partner.arrivals) < backlog:
                sys.exit(f"error: only {len(partner.arrivals)} of {backlog} deliveries after 600 s")
            throughput = steady_rate(partner.arrivals)

            interval, sent = 1 / args.rate, 0
            phase_start = time.perf_counter()
            next_at = phase_start
            while time.perf_counter() - phase_start < args.duration:
                await queue_event(producer, canonical_topic, event(f"l{sent}", 10_000_000 + sent, 1))
                sent += 1
                next_at += interval
                if (delay := next_at - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
            deadline = time.monotonic() + 60
            while len(partner.latencies_ms) < sent and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.25)
        finally:
            stop(procs)
            await runner.cleanup()

    print(
        f"\ndelivery bench: {args.orders} orders x 3 events, 1 subscription, 6 partitions,"
        f" {args.processes} process(es), cores={os.cpu_count()}"
    )
    print(f"{'what':46} {'value':>12}")
    print(f"{'ceiling: bare aiohttp POSTs to the partner':46} {ceiling_rate:10.0f}/s")
    print(f"{'delivery: backlog drain (signed, logged)':46} {throughput:10.0f}/s")
    print(f"{'delivery / ceiling':46} {throughput / ceiling_rate:12.2f}")
    print(f"{'added latency at ' + str(args.rate) + '/s: p50':46} {pct(partner.latencies_ms, 0.5):10.1f}ms")
    print(f"{'added latency p95':46} {pct(partner.latencies_ms, 0.95):10.1f}ms")
    print(f"{'added latency p99':46} {pct(partner.latencies_ms, 0.99):10.1f}ms")
    print(f"{'delivery peak RSS (all processes)':46} {peak_rss:10.0f}MB")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (HookstreamError, psycopg.OperationalError) as exc:
        sys.exit(f"error: {exc}; start the stack with `hookstream dev up`")

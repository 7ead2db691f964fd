"""Delivery under two harder loads than a fast endpoint.

    python bench/delivery_scenarios.py slow [--endpoints 1000] [--events 30] [--latency-ms 200]
    python bench/delivery_scenarios.py outage [--outage-s 600] [--rate 100] [--schedule 5s,5m,30m,...]

slow:   ``--endpoints`` subscriptions, each on its own host name (127.0.x.y: every address is
        loopback, so the connection pool treats them as separate hosts), each answering after
        ``--latency-ms``. ``--events`` canonical events fan out to every endpoint. Figures: requests
        in flight at the partner while the backlog drains (mean, p50, max), deliveries/s, and what
        ``--endpoints`` requests always in flight would give (endpoints / latency).
outage: canonical events at ``--rate`` while the partner refuses connections for ``--outage-s``,
        then it comes back. Figures: how long after recovery the backlog took to arrive, the drain
        rate once deliveries came due, and that every event arrived once. The retry schedule
        decides when retried deliveries come due: the default is the service's own.

Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (or .hookstream/stack.env: run `hookstream dev up`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import psutil
import psycopg
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hookstream.db import Database  # noqa: E402
from hookstream.errors import HookstreamError  # noqa: E402
from hookstream.kafka import Producer, TopicAdmin, TopicSpec  # noqa: E402
from hookstream.secretbox import SecretsSettings  # noqa: E402
from hookstream.settings import StackSettings  # noqa: E402
from hookstream.store.subscriptions import SubscriptionStore  # noqa: E402
from hookstream_tools.devstack.process import free_port  # noqa: E402

from bench.common import fresh_database, pct, serve, start_delivery, steady_rate, stop  # noqa: E402
from bench.delivery import event, queue_event  # noqa: E402


class Partner:
    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.in_flight = 0
        self.arrivals: list[float] = []
        self.events: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        try:
            body = await request.read()
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            self.arrivals.append(time.monotonic())
            self.events.append(json.loads(body)["event_id"])
            return web.Response(text="ok")
        finally:
            self.in_flight -= 1


async def publish(producer: Producer, topic: str, event_id: str, order: int) -> None:
    await queue_event(producer, topic, event(event_id, order, 1))


async def slow(args: argparse.Namespace, bootstrap: str, database_url: str, name: str) -> None:
    partner = Partner(args.latency_ms / 1000)
    port = free_port()
    # 0.0.0.0: a listener on 127.0.0.1 would not answer on 127.0.x.y.
    runner = await serve(partner.handle, "0.0.0.0", port)  # noqa: S104
    async with Database(database_url) as db:
        store = SubscriptionStore(db, SecretsSettings().keyring())
        for n in range(args.endpoints):
            host = f"127.0.{n // 250}.{n % 250 + 1}"
            await store.add(name=f"slow-{n}", url=f"http://{host}:{port}/hooks/{n}", event_types=["order.*"])
    total = args.endpoints * args.events
    async with Producer(bootstrap) as producer:
        await asyncio.gather(*(publish(producer, f"{name}.canonical", f"s{n}", n) for n in range(args.events)))
    samples: list[tuple[float, int]] = []
    procs = start_delivery(bootstrap, database_url, name, args.processes, {})
    peak_rss = 0.0
    try:
        started = time.monotonic()
        while len(partner.arrivals) < total and time.monotonic() - started < 900:
            samples.append((time.monotonic(), partner.in_flight))
            if len(samples) % 20 == 0:
                rss = sum(psutil.Process(p.pid).memory_info().rss for p in procs)
                peak_rss = max(peak_rss, rss / 2**20)
            await asyncio.sleep(0.05)
    finally:
        stop(procs)
        await runner.cleanup()
    if len(partner.arrivals) < total:
        sys.exit(f"error: only {len(partner.arrivals)} of {total} deliveries after 900 s")
    arrivals = sorted(partner.arrivals)
    t10, t90 = arrivals[int(0.1 * total)], arrivals[int(0.9 * total) - 1]
    steady = [n for t, n in samples if t10 <= t <= t90]
    rate = steady_rate(arrivals)
    mean = sum(steady) / len(steady)
    print(
        f"\nslow endpoints: {args.endpoints} endpoints on their own hosts, {args.latency_ms} ms each,"
        f" {args.events} events → {total} deliveries, {args.processes} process(es), cores={os.cpu_count()}"
    )
    print(f"{'what':46} {'value':>12}")
    print(f"{'in flight at the partner: mean':46} {mean:12.0f}")
    print(f"{'in flight p50':46} {pct(steady, 0.5):12.0f}")
    print(f"{'in flight max':46} {max(steady):12.0f}")
    print(f"{'deliveries/s':46} {rate:10.0f}/s")
    ideal = args.endpoints / (args.latency_ms / 1000)
    print(f"{f'deliveries/s with {args.endpoints} always in flight':46} {ideal:10.0f}/s")
    print(f"{'delivery peak RSS (all processes)':46} {peak_rss:10.0f}MB")


async def outage(args: argparse.Namespace, bootstrap: str, database_url: str, name: str) -> None:
    partner = Partner()
    port = free_port()
    async with Database(database_url) as db:
        await SubscriptionStore(db, SecretsSettings().keyring()).add(
            name="outage", url=f"http://127.0.0.1:{port}/hooks", event_types=["order.*"]
        )
    schedule = {"HOOKSTREAM_DELIVERY_RETRY_SCHEDULE": args.schedule} if args.schedule else {}
    procs = start_delivery(bootstrap, database_url, name, args.processes, schedule)
    sent = 0
    try:
        async with Producer(bootstrap) as producer:
            # The partner is down (nothing listens on its port) while events keep coming.
            started = time.monotonic()
            interval = 1 / args.rate
            while (elapsed := time.monotonic() - started) < args.outage_s:
                await publish(producer, f"{name}.canonical", f"o{sent}", sent)
                sent += 1
                if (delay := started + sent * interval - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
                if sent % (args.rate * 60) == 0:
                    print(f"  outage: {elapsed:5.0f} s, {sent} events sent", flush=True)
        runner = await serve(partner.handle, "127.0.0.1", port)
        recovered = time.monotonic()
        print(f"  partner back after {recovered - started:.0f} s; {sent} events waiting", flush=True)
        deadline = recovered + args.drain_limit_s
        while len(set(partner.events)) < sent and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # catch late duplicates
        await runner.cleanup()
    finally:
        stop(procs)
    arrived = set(partner.events)
    arrivals = sorted(partner.arrivals)
    print(
        f"\npartner outage: {args.outage_s} s at {args.rate} events/s, schedule {args.schedule or 'default'},"
        f" {args.processes} process(es), cores={os.cpu_count()}"
    )
    print(f"{'what':46} {'value':>12}")
    print(f"{'events sent during the outage':46} {sent:12d}")
    print(f"{'delivered after recovery':46} {len(arrived):12d}")
    print(f"{'requests (duplicates = at-least-once)':46} {len(partner.events):12d}")
    if arrivals:
        half = arrivals[len(arrivals) // 2]
        print(f"{'first delivery after recovery':46} {arrivals[0] - recovered:11.1f}s")
        print(f"{'half delivered after recovery':46} {half - recovered:11.1f}s")
        print(f"{'all delivered after recovery':46} {arrivals[-1] - recovered:11.1f}s")
        if len(arrivals) >= 20:
            print(f"{'drain rate (10 % → 90 % of arrivals)':46} {steady_rate(arrivals):10.0f}/s")
    if len(arrived) < sent:
        sys.exit(f"error: {sent - len(arrived)} events not delivered within {args.drain_limit_s} s of recovery")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=1)
    sub = parser.add_subparsers(dest="scenario", required=True)
    s = sub.add_parser("slow")
    s.add_argument("--endpoints", type=int, default=1_000)
    s.add_argument("--events", type=int, default=30)
    s.add_argument("--latency-ms", type=int, default=200)
    o = sub.add_parser("outage")
    o.add_argument("--outage-s", type=int, default=600)
    o.add_argument("--rate", type=int, default=100, help="events/s")
    o.add_argument("--schedule", default="", help="retry schedule, e.g. 5s,1m,5m (default: the service's)")
    o.add_argument("--drain-limit-s", type=int, default=3_600)
    args = parser.parse_args()
    stack = StackSettings()
    bootstrap, base_url = stack.require_kafka(), stack.require_database()
    name = f"dscn{int(time.time())}"
    database_url = await fresh_database(base_url, name)
    TopicAdmin(bootstrap).ensure_topics([TopicSpec(f"{name}.canonical", 6, 3_600_000)])
    await (slow if args.scenario == "slow" else outage)(args, bootstrap, database_url, name)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (HookstreamError, psycopg.OperationalError) as exc:
        sys.exit(f"error: {exc}; start the stack with `hookstream dev up`")

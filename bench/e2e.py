"""End to end: signed webhook offered to ingress → partner endpoint received the delivered event.

    python bench/e2e.py [--rates 20,100,200,500,1000] [--duration 60] [--idle 20] [--processes 1]

Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (or .hookstream/stack.env: run `hookstream dev up`) and Go
(bench/loadgen). Every run gets its own topics, database and subscription (deleted afterwards unless
`--keep`), and starts every service fresh as `hookstream run <name>`: ingress, normalizer, delivery (and with
`--workflows` crm, inventory, notifications, risk and fulfillment, whose systems the sandbox in this process
plays; latency to the last of an order's workflow effects is printed too). Then:
1. warm-up: a few webhooks, until the partner has them all (groups assigned, connections open);
2. idle: nothing sent for ``--idle`` s; cores used per service, Kafka and Postgres included;
3. per rate: the open-loop generator (bench/loadgen) POSTs distinct, Shopify-signed `orders/create`
   webhooks for ``--duration`` s; the partner (in this process) records when each order arrives.
   Latency runs from the request's *scheduled* send time (no coordinated omission, ingress included)
   to its arrival at the partner. The backlog (sent so far - delivered so far) is sampled every
   second; "flat" means its slope over the run stays under 1 % of the rate per second (with
   ``--workflows``, the backlog of orders still missing a workflow effect too).
   CPU-s per 1,000 events covers the sending window and the drain after it, per service.
The sustainable rate is the highest flat rate among ``--rates``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import psycopg.sql
from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hookstream.db import Database  # noqa: E402
from hookstream.errors import HookstreamError  # noqa: E402
from hookstream.kafka import TopicAdmin, TopicSpec  # noqa: E402
from hookstream.secretbox import SecretsSettings  # noqa: E402
from hookstream.settings import StackSettings  # noqa: E402
from hookstream.store.subscriptions import SubscriptionStore  # noqa: E402
from hookstream_tools.devstack.process import free_port  # noqa: E402
from hookstream_tools.sandbox import Sandbox, SandboxServers  # noqa: E402

from bench.common import build_loadgen, fresh_database, pct, serve, start_delivery, stop  # noqa: E402
from tests.signing import load_sample  # noqa: E402

SECRET = "shpss_e2e_bench"  # noqa: S105 - a throwaway key for the bench's own channel
ORDER = re.compile(rb'"order_id":"shopify:(\d+)"')
EFFECT_ORDER = re.compile(r"shopify:(\d+)$")  # /orders/shopify:N, /reservations/shopify:N
SUBJECT_ORDER = re.compile(r"order (\d+)$")  # "Thank you for your order N"
PHASE_SPAN = 10_000_000  # order numbers of one phase: first = (phase + 1) * PHASE_SPAN


class Partner:
    """Records the wall-clock arrival (ns) of every order; answers 200 at once."""

    def __init__(self) -> None:
        self.arrivals: dict[int, int] = {}
        self.duplicates = 0
        self.unparsed = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time_ns()
        found = ORDER.search(body)
        if found is None:
            self.unparsed += 1
        else:
            n = int(found.group(1))
            if n in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[n] = now
        return web.Response(text="ok")

    def count(self, first: int, last: int) -> int:
        return sum(1 for n in self.arrivals if first <= n < last)


@dataclass
class Group:
    """One service's processes (a process and its children) for CPU and memory accounting."""

    name: str
    pids: list[int]
    # Postgres: backends that exited count in the postmaster's children times; the harness: the loadgen runs.
    reaps_children: bool = False
    recursive: bool = True  # the harness's children are the services, counted on their own

    def cpu_s(self) -> float:
        total = 0.0
        for proc in self._procs():
            try:
                t = proc.cpu_times()
                total += t.user + t.system
                if self.reaps_children and proc.pid in self.pids:
                    total += t.children_user + t.children_system
            except psutil.NoSuchProcess:
                continue
        return total

    def rss_mb(self) -> float:
        """Proportional set size: Postgres backends share their buffers, RSS would count them once per process."""
        total = 0
        for proc in self._procs():
            try:
                total += proc.memory_full_info().pss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20

    def _procs(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                procs += [root, *(root.children(recursive=True) if self.recursive else [])]
            except psutil.NoSuchProcess:
                continue
        return procs


@dataclass
class Phase:
    rate: int
    sent: int
    errors: int  # not answered 200: an error status, or no answer within the generator's 30 s
    accepted: int  # on the raw topic: what must reach the partner
    delivered: int
    latencies_ms: list[float]
    backlog_slope: float
    cpu: dict[str, float]
    rss: dict[str, float]  # PSS
    seconds: float
    stages: dict[str, list[float]] = field(default_factory=dict)
    error_kinds: str = "-"  # e.g. "status503:2,transport:1"
    effect_latencies_ms: list[float] = field(default_factory=list)  # webhook → last workflow effect
    effects_complete: int = 0  # orders with every workflow effect
    per_system_ms: dict[str, list[float]] = field(default_factory=dict)  # webhook → that system's effect
    effects_slope: float = 0.0  # orders sent so far minus orders with every workflow effect, per second

    @property
    def flat(self) -> bool:
        """Everything accepted arrived, and neither the partner's nor the workflows' backlog grew."""
        limit = 0.01 * self.rate
        return self.lost == 0 and self.backlog_slope < limit and self.effects_slope < limit

    @property
    def lost(self) -> int:
        return self.accepted - self.delivered


def record_times(bootstrap: str, topic: str, first: int, last: int) -> dict[int, int]:
    """Order number → Kafka timestamp (ms, when the producer queued it) of the records of one phase."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"e2e-times-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        times: dict[int, int] = {}
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 60
        while len(done) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=1):
                if message.error() is not None:
                    continue
                if (message.offset() or 0) + 1 >= ends[message.partition()]:
                    done.add(message.partition())
                key = (message.key() or b"").rpartition(b":")[2]
                if key.isdigit() and first <= int(key) < last:
                    times.setdefault(int(key), message.timestamp()[1])
            # a transaction marker can be the last offset: a partition whose position passed its end is done
            for tp in consumer.position([TopicPartition(topic, p) for p in partitions if p not in done]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
        return times
    finally:
        consumer.close()


def stages(
    bootstrap: str, name: str, partner: Partner, first: int, last: int, start_ns: int, interval_ns: int
) -> tuple[int, dict[str, list[float]]]:
    """How many webhooks ingress accepted (on the raw topic), and where each event spent its time
    (ms): until ingress produced it, until the normalizer's relay produced the canonical event,
    until the partner had it."""
    raw = record_times(bootstrap, f"{name}.raw", first, last)
    canonical = record_times(bootstrap, f"{name}.canonical", first, last)
    split: dict[str, list[float]] = {"ingress": [], "normalizer": [], "delivery": []}
    for n, arrived_ns in partner.arrivals.items():
        if first <= n < last and n in raw and n in canonical:
            scheduled_ms = (start_ns + (n - first) * interval_ns) / 1e6
            split["ingress"].append(raw[n] - scheduled_ms)
            split["normalizer"].append(canonical[n] - raw[n])
            split["delivery"].append(arrived_ns / 1e6 - canonical[n])
    return len(raw), split


def clean_up(bootstrap: str, base_url: str, name: str) -> None:
    """Delete the run's topics (the services' tiers, DLQs and outbox too) and its database: a broker
    left with thousands of partitions from earlier runs gets slower and would skew the next run."""
    admin = TopicAdmin(bootstrap)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"e2e-clean-{name}"})
    try:
        topics = [t for t in consumer.list_topics(timeout=10).topics if name in t]
    finally:
        consumer.close()
    admin.delete_topics(topics)
    with psycopg.connect(psycopg.conninfo.make_conninfo(base_url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def listener_pid(port: int) -> int | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def webhook_template(directory: Path) -> tuple[Path, dict[str, str]]:
    """The Shopify `orders/create` sample with {{N}} as its order id; headers with {{N}} as the webhook id."""
    headers, raw = load_sample("shopify_orders_create")
    body = json.loads(raw)
    sentinel = 987_654_321_987_654
    body["id"] = sentinel
    body["name"] = f"#{sentinel}"
    # One customer per order, as in a real shop (one email for all would make every order a velocity case).
    body["email"] = f"e2e-{sentinel}@example.com"
    if isinstance(body.get("customer"), dict):
        body["customer"]["email"] = body["email"]
    path = directory / "order.json"
    path.write_text(json.dumps(body).replace(str(sentinel), "{{N}}"))
    headers = {k: v for k, v in headers.items() if k.lower() != "x-shopify-hmac-sha256"}
    headers["X-Shopify-Webhook-Id"] = "e2e-{{N}}"
    headers["X-Shopify-Event-Id"] = "e2e-event-{{N}}"
    return path, headers


def wait_http(url: str, procs: list[subprocess.Popen[bytes]], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            sys.exit("error: a service exited during start-up (see its output above)")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own local URL
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"error: {url} did not answer within {timeout_s:.0f} s")


def start_services(
    name: str, bootstrap: str, database_url: str, config: Path, port: int, processes: int
) -> dict[str, list[subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "HOOKSTREAM_HEALTH_PORT": "0",
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        "HOOKSTREAM_NORMALIZER_SERVICE_NAME": f"normalizer-{name}",
        "HOOKSTREAM_NORMALIZER_RAW_TOPIC": f"{name}.raw",
        "HOOKSTREAM_NORMALIZER_CANONICAL_TOPIC": f"{name}.canonical",
    }
    run = [sys.executable, "-m", "hookstream", "run"]
    ingress = [
        *run,
        "ingress",
        "--port",
        str(port),
        "--health-port",
        "0",
        "--workers",
        str(processes),
        "--config",
        str(config),
    ]
    return {
        "ingress": [subprocess.Popen(ingress, env=env)],
        "normalizer": [subprocess.Popen([*run, "normalizer"], env=env) for _ in range(processes)],
        "delivery": start_delivery(bootstrap, database_url, name, processes),  # reads <name>.canonical
    }


WORKFLOWS = ("crm", "inventory", "notifications", "risk", "fulfillment")


def start_workflows(
    name: str, bootstrap: str, database_url: str, sandbox: SandboxServers, processes: int
) -> dict[str, list[subprocess.Popen[bytes]]]:
    """Every workflow service reading ``<name>.canonical``, talking to the sandbox (in this process)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "HOOKSTREAM_HEALTH_PORT": "0",
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        "HOOKSTREAM_CRM_URL": sandbox.url("crm"),
        "HOOKSTREAM_INVENTORY_URL": sandbox.url("erp"),
        "HOOKSTREAM_RISK_URL": sandbox.url("risk"),
        "HOOKSTREAM_FULFILLMENT_URL": sandbox.url("warehouse"),
        "HOOKSTREAM_RISK_VERDICT_TOPIC": f"{name}.risk",
        "HOOKSTREAM_FULFILLMENT_RISK_TOPIC": f"{name}.risk",
        "HOOKSTREAM_FULFILLMENT_RISK_SERVICE": f"risk-{name}",
        "HOOKSTREAM_FULFILLMENT_FULFILLMENT_TOPIC": f"{name}.fulfillment",
    }
    for service in ("notifications", "fulfillment"):
        prefix = f"HOOKSTREAM_{service.upper()}_"
        env |= {f"{prefix}SMTP_HOST": sandbox.host, f"{prefix}SMTP_PORT": str(sandbox.smtp_port)}
        env[f"{prefix}SENDER"] = "Shop <orders@shop.example>"
    for service in WORKFLOWS:
        prefix = f"HOOKSTREAM_{service.upper()}_"
        env |= {f"{prefix}SERVICE_NAME": f"{service}-{name}", f"{prefix}INPUT_TOPIC": f"{name}.canonical"}
    run = [sys.executable, "-m", "hookstream", "run"]
    return {s: [subprocess.Popen([*run, s], env=env) for _ in range(processes)] for s in WORKFLOWS}


def effects(sandbox: Sandbox, first: int, last: int) -> dict[int, dict[str, float]]:
    """Per order number: the systems (crm, erp, email, …) a workflow effect reached, and when it last did."""
    found: dict[int, dict[str, float]] = {}

    def seen(number: int, system: str, at: float) -> None:
        if first <= number < last:
            systems = found.setdefault(number, {})
            systems[system] = max(systems.get(system, 0.0), at)

    for call in sandbox.calls:
        match = EFFECT_ORDER.search(call.path)
        if match and 200 <= call.status < 300 and not call.replayed:
            seen(int(match.group(1)), call.system, call.at)
    for message in sandbox.emails:
        match = SUBJECT_ORDER.search(message["subject"])
        if match:
            seen(int(match.group(1)), "email", message["at"])
    return found


def last_effects(sandbox: Sandbox, first: int, last: int) -> dict[int, tuple[int, float]]:
    """Per order number: how many workflow effects reached the sandbox, and when the last one did."""
    return {n: (len(systems), max(systems.values())) for n, systems in effects(sandbox, first, last).items()}


def loadgen_command(
    loadgen: Path, url: str, body: Path, headers: dict[str, str], rate: int, duration_s: float, first: int
) -> list[str]:
    cmd = [str(loadgen), "-url", url, "-rate", str(rate), "-duration", f"{duration_s}s", "-body", str(body)]
    cmd += ["-first", str(first), "-hmac-header", "X-Shopify-Hmac-Sha256", "-hmac-secret", SECRET]
    for k, v in headers.items():
        cmd += ["-header", f"{k}: {v}"]
    return cmd


async def offer(
    bootstrap: str,
    name: str,
    cmd: list[str],
    partner: Partner,
    groups: list[Group],
    rate: int,
    duration_s: float,
    first: int,
    drain_timeout_s: float = 120,
    sandbox: Sandbox | None = None,
    effects_per_order: int = 0,
) -> Phase:
    total = int(rate * duration_s)
    last = first + total
    cpu_before = {g.name: g.cpu_s() for g in groups}
    launched = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    finished = asyncio.ensure_future(proc.wait())
    samples: list[tuple[float, int]] = []
    effect_samples: list[tuple[float, int]] = []

    def effects_done() -> int:
        if sandbox is None or not effects_per_order:
            return 0
        return sum(1 for c, _ in last_effects(sandbox, first, last).values() if c >= effects_per_order)

    while not finished.done():
        await asyncio.wait([finished], timeout=1)
        elapsed = time.monotonic() - launched
        sent = min(total, int(elapsed * rate))
        samples.append((elapsed, sent - partner.count(first, last)))
        if sandbox is not None and effects_per_order:
            effect_samples.append((elapsed, sent - effects_done()))
    out = (await proc.stdout.read()).decode() if proc.stdout else ""
    fields = dict(item.split("=", 1) for item in out.split())
    deadline = time.monotonic() + drain_timeout_s
    while partner.count(first, last) < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)

    while sandbox is not None and effects_per_order and effects_done() < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    seconds = time.monotonic() - launched
    cpu = {g.name: g.cpu_s() - cpu_before[g.name] for g in groups}
    start_ns, interval_ns = int(fields["start_ns"]), int(fields["interval_ns"])
    latencies = [
        (partner.arrivals[n] - (start_ns + (n - first) * interval_ns)) / 1e6
        for n in range(first, last)
        if n in partner.arrivals
    ]
    steady = [(t, b) for t, b in samples if 5 <= t <= duration_s]
    effect_latencies: list[float] = []
    per_system: dict[str, list[float]] = {}
    complete = 0
    if sandbox is not None:
        for n, systems in effects(sandbox, first, last).items():
            sent_ns = start_ns + (n - first) * interval_ns
            for system, at in systems.items():
                per_system.setdefault(system, []).append((at * 1e9 - sent_ns) / 1e6)
            if len(systems) >= effects_per_order:
                complete += 1
                effect_latencies.append((max(systems.values()) * 1e9 - sent_ns) / 1e6)
    accepted, split = await asyncio.to_thread(stages, bootstrap, name, partner, first, last, start_ns, interval_ns)
    return Phase(
        rate=rate,
        sent=total,
        errors=int(fields["errors"]),
        accepted=accepted,
        delivered=len(latencies),
        latencies_ms=latencies,
        backlog_slope=slope(steady),
        effects_slope=slope([(t, b) for t, b in effect_samples if 5 <= t <= duration_s]),
        cpu=cpu,
        rss={g.name: g.rss_mb() for g in groups},
        seconds=seconds,
        stages=split,
        error_kinds=fields.get("error_kinds", "-"),
        effect_latencies_ms=effect_latencies,
        effects_complete=complete,
        per_system_ms=per_system,
    )


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope (backlog events per second); 0 when there are too few points."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(b for _, b in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (b - my) for t, b in points) / var if var else 0.0


async def idle_cores(groups: list[Group], seconds: float) -> dict[str, float]:
    before = {g.name: g.cpu_s() for g in groups}
    await asyncio.sleep(seconds)
    return {g.name: (g.cpu_s() - before[g.name]) / seconds for g in groups}


def report(
    args: argparse.Namespace, phases: list[Phase], idle: dict[str, float], groups: list[Group], rss: dict[str, float]
) -> None:
    names = [g.name for g in groups]
    pipeline = [n for n in names if n != "harness"]
    print(
        f"\ne2e bench: Shopify orders/create → ingress → normalizer → delivery → partner"
        f"{' (and every workflow)' if args.workflows else ''};"
        f" {args.processes} process(es) per service, cores={os.cpu_count()}, {args.duration:.0f} s per rate"
    )
    print(
        f"{'offered':>8} {'delivered':>11} {'errors':>6} {'lost':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'backlog/s':>9} {'flat':>4} {'CPU-s/1k':>8}   per service CPU-s/1k"
    )
    for p in phases:
        per_k = {n: p.cpu[n] / max(p.delivered, 1) * 1000 for n in names}
        detail = " ".join(f"{n}={per_k[n]:.2f}" for n in names)
        print(
            f"{p.rate:>6}/s {p.delivered:>5}/{p.sent:<5} {p.errors:>6} {p.lost:>4} {pct(p.latencies_ms, 0.5):>8.1f}"
            f" {pct(p.latencies_ms, 0.95):>8.1f} {pct(p.latencies_ms, 0.99):>8.1f} {p.backlog_slope:>9.1f}"
            f" {'yes' if p.flat else 'no':>4} {sum(per_k[n] for n in pipeline):>8.2f}   {detail}"
        )
    print(
        "where an event spends its time, ms p50/p95: until ingress produced it | normalizer incl. outbox relay"
        " | canonical event produced → partner"
    )
    for p in phases:
        cells = [f"{pct(v, 0.5):7.1f} /{pct(v, 0.95):7.1f}" for v in p.stages.values()]
        print(f"{p.rate:>6}/s " + " | ".join(cells))
    if args.workflows:
        print(f"webhook → last workflow effect ({', '.join(WORKFLOWS)} via the sandbox), ms p50/p95/p99:")
        for p in phases:
            v = p.effect_latencies_ms
            print(
                f"{p.rate:>6}/s {pct(v, 0.5):8.1f} {pct(v, 0.95):8.1f} {pct(v, 0.99):8.1f}"
                f"   orders with every effect: {p.effects_complete}/{p.sent}"
            )
        print(
            "backlog growth of orders missing a workflow effect, per second: "
            + ", ".join(f"{p.rate}/s {p.effects_slope:.1f}" for p in phases)
        )
        print("webhook → each system's effect, ms p50/p95:")
        for p in phases:
            cells = [f"{s} {pct(v, 0.5):.0f}/{pct(v, 0.95):.0f}" for s, v in sorted(p.per_system_ms.items())]
            print(f"{p.rate:>6}/s " + " | ".join(cells))
    for p in phases:
        if p.errors:
            print(f"{p.rate:>6}/s not answered 200: {p.error_kinds}")
    flat = [p.rate for p in phases if p.flat]
    print(f"sustainable rate (highest flat rate offered): {max(flat) if flat else 'none'}/s")
    print(
        f"idle cores: pipeline {sum(idle[n] for n in pipeline):.3f} ("
        + ", ".join(f"{n} {idle[n]:.3f}" for n in names)
        + ")"
    )
    print("memory (PSS) MB after the last rate: " + ", ".join(f"{n} {rss[n]:.0f}" for n in names))
    print("CPU-s/1k 'pipeline' = services + Kafka + Postgres; 'harness' = this process (partner) + loadgen")
    print("errors: requests not answered 200 (an error status, or none within the generator's 30 s);")
    print("lost: accepted (on the raw topic) minus delivered to the partner")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="20,100,200,500,1000", help="events/s, one run each")
    parser.add_argument("--duration", type=float, default=60, help="seconds of sending per rate")
    parser.add_argument("--idle", type=float, default=20, help="seconds of measuring the idle pipeline")
    parser.add_argument("--processes", type=int, default=1, help="processes per service (ingress workers too)")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and database for a look afterwards")
    parser.add_argument(
        "--workflows", action="store_true", help="also run crm, inventory, notifications, risk, fulfillment (sandbox)"
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    stack = StackSettings()
    bootstrap, base_url = stack.require_kafka(), stack.require_database()
    name = f"e2e{int(time.time())}"
    database_url = await fresh_database(base_url, name)
    TopicAdmin(bootstrap).ensure_topics(
        [
            TopicSpec(f"{name}.raw", 12, 3_600_000),
            TopicSpec(f"{name}.canonical", 6, 3_600_000),
            TopicSpec(f"{name}.deliveries", 6, 3_600_000),
        ]
    )
    partner = Partner()
    partner_port = free_port()
    runner = await serve(partner.handle, "127.0.0.1", partner_port)
    async with Database(database_url) as db:
        await SubscriptionStore(db, SecretsSettings().keyring()).add(
            name="e2e", url=f"http://127.0.0.1:{partner_port}/hooks", event_types=["order.*"]
        )

    with tempfile.TemporaryDirectory(prefix="hookstream-e2e-") as tmp:
        directory = Path(tmp)
        loadgen = build_loadgen(directory)
        body, headers = webhook_template(directory)
        config = directory / "hookstream.toml"
        config.write_text(
            f'[ingress]\ntopic = "{name}.raw"\n\n[channels.shopify]\nkind = "shopify"\nsecrets = ["{SECRET}"]\n'
        )
        port = free_port()
        procs = start_services(name, bootstrap, database_url, config, port, args.processes)
        sandbox: SandboxServers | None = None
        if args.workflows:
            sandbox = await SandboxServers(Sandbox()).__aenter__()
            procs |= start_workflows(name, bootstrap, database_url, sandbox, args.processes)
        world = sandbox.sandbox if sandbox else None
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", [p for ps in procs.values() for p in ps])
            kafka_pid = listener_pid(int(bootstrap.rsplit(":", 1)[1]))
            pg_port = psycopg.conninfo.conninfo_to_dict(database_url).get("port") or 5432
            pg_pid = listener_pid(int(pg_port))
            groups = [Group(n, [p.pid for p in ps]) for n, ps in procs.items()]
            groups += [Group("kafka", [kafka_pid] if kafka_pid else [])]
            groups += [Group("postgres", [pg_pid] if pg_pid else [], reaps_children=True)]
            groups += [Group("harness", [os.getpid()], reaps_children=True, recursive=False)]
            url = f"http://127.0.0.1:{port}/webhooks/shopify"

            print("warming up (groups assigned, connections open) ...", file=sys.stderr)
            warm_cmd = loadgen_command(loadgen, url, body, headers, 20, 5, 1)
            warm = await offer(bootstrap, name, warm_cmd, partner, groups, 20, 5, 1, 90)
            if warm.delivered < warm.sent:
                sys.exit(f"error: only {warm.delivered} of {warm.sent} warm-up webhooks reached the partner")
            per_order = 0
            if world is not None:
                await asyncio.sleep(10)  # the workflows start and join their groups meanwhile
                counts = [c for c, _ in last_effects(world, 1, 1 + warm.sent).values()]
                per_order = max(counts, default=0)
                if not per_order:
                    sys.exit("error: no workflow effect reached the sandbox during the warm-up")
                print(f"workflow effects per order: {per_order}", file=sys.stderr)
            await asyncio.sleep(5)  # commits, relays and the warm-up's housekeeping settle
            print(f"measuring idle for {args.idle:.0f} s ...", file=sys.stderr)
            idle = await idle_cores(groups, args.idle)
            phases = []
            for i, rate in enumerate(rates):
                first = (i + 1) * PHASE_SPAN
                print(f"offering {rate}/s for {args.duration:.0f} s ...", file=sys.stderr)
                cmd = loadgen_command(loadgen, url, body, headers, rate, args.duration, first)
                phases.append(
                    await offer(
                        bootstrap,
                        name,
                        cmd,
                        partner,
                        groups,
                        rate,
                        args.duration,
                        first,
                        sandbox=world,
                        effects_per_order=per_order,
                    )
                )
                await asyncio.sleep(3)
            rss = {g.name: g.rss_mb() for g in groups}
        finally:
            stop([p for ps in procs.values() for p in ps])
            await runner.cleanup()
            if sandbox is not None:
                await sandbox.stop()
            if not args.keep:
                clean_up(bootstrap, base_url, name)
    report(args, phases, idle, groups, rss)
    if partner.duplicates or partner.unparsed:
        print(f"partner saw {partner.duplicates} duplicate and {partner.unparsed} unrecognised deliveries")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (HookstreamError, psycopg.OperationalError) as exc:
        sys.exit(f"error: {exc}; start the stack with `hookstream dev up`")

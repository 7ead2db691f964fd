"""Normalizer throughput (raw → canonical events/s) and added latency, with a bare consumer as the ceiling.

    python bench/normalizer.py [--orders 10000] [--rate 500] [--duration 10]

Uses KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (or .hookstream/stack.env: run `hookstream dev up`).
Each run gets its own topics and database. Three phases:
1. ceiling: an aiokafka consumer reads and Avro-decodes the backlog, no effects;
2. backlog: `hookstream run normalizer` drains orders x 3 events (created, paid, fulfilled);
   throughput is measured between 10 % and 90 % of the canonical events being committed;
3. latency: events at a fixed rate while the normalizer runs; latency = canonical record's
   Kafka timestamp - the raw record's received_at (what the normalizer adds, Kafka hops included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402
from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: E402
from hookstream.errors import HookstreamError  # noqa: E402
from hookstream.kafka import Producer, TopicAdmin, TopicSpec  # noqa: E402
from hookstream.settings import StackSettings  # noqa: E402

from bench.common import fresh_database, pct  # noqa: E402
from tests.normalizer_helpers import CANONICAL, RAW, envelope, publish  # noqa: E402


def committed(bootstrap: str, topic: str) -> int:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-count", "isolation.level": "read_committed"}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=5)
        if metadata.topics[topic].error is not None:
            return 0
        total = 0
        for p in metadata.topics[topic].partitions:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
            except KafkaException:  # leaders of a brand-new topic not elected yet
                return 0
            total += high - low
        return total  # includes transaction markers: close enough for progress, exact counts come from reading
    finally:
        consumer.close()


async def produce_orders(producer: Producer, topic: str, first: int, count: int, prefix: str) -> None:
    batch: list[asyncio.Future[object]] = []
    for n in range(first, first + count):
        for sample, kind in (
            ("shopify_orders_create", "c"),
            ("shopify_orders_paid", "p"),
            ("shopify_orders_fulfilled", "f"),
        ):
            e = envelope(sample, event_id=f"{prefix}{n}-{kind}", order=n)
            batch.append(asyncio.ensure_future(publish(producer, topic, e)))
        if len(batch) >= 3000:
            await asyncio.gather(*batch)
            batch = []
    await asyncio.gather(*batch)


async def ceiling(bootstrap: str, topic: str, expect: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-ceiling-{time.time()}", auto_offset_reset="earliest"
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expect:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for r in records:
                    RAW.decode(r.value, list(r.headers))
                seen += sum(len(v) for v in batches.values())
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=500, help="events/s in the latency phase")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1, help="normalizer processes in the group")
    args = parser.parse_args()
    stack = StackSettings()
    bootstrap, base_url = stack.require_kafka(), stack.require_database()
    name = f"bench{int(time.time())}"
    database_url = await fresh_database(base_url, name)
    raw_topic, canonical_topic = f"{name}.raw", f"{name}.canonical"
    TopicAdmin(bootstrap).ensure_topics([TopicSpec(raw_topic, 6, 3_600_000)])
    backlog = args.orders * 3

    async with Producer(bootstrap) as producer:
        t = time.perf_counter()
        await produce_orders(producer, raw_topic, 1, args.orders, "b")
        print(f"produced {backlog} raw events in {time.perf_counter() - t:.1f}s")
        ceiling_rate = await ceiling(bootstrap, raw_topic, backlog)

        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            "HOOKSTREAM_NORMALIZER_SERVICE_NAME": f"normalizer-{name}",
            "HOOKSTREAM_NORMALIZER_RAW_TOPIC": raw_topic,
            "HOOKSTREAM_HEALTH_PORT": "0",
            "HOOKSTREAM_NORMALIZER_CANONICAL_TOPIC": canonical_topic,
            "HOOKSTREAM_LOG_LEVEL": "WARNING",
        }
        procs = [
            subprocess.Popen([sys.executable, "-m", "hookstream", "run", "normalizer"], env=env)  # noqa: ASYNC220
            for _ in range(args.processes)
        ]
        try:
            marks: dict[float, float] = {}
            started = time.monotonic()
            peak_rss = 0.0
            while True:
                count = committed(bootstrap, canonical_topic)
                now = time.monotonic()
                peak_rss = max(peak_rss, sum(psutil.Process(p.pid).memory_info().rss for p in procs) / 2**20)
                for frac in (0.1, 0.9):
                    if frac not in marks and count >= frac * backlog:
                        marks[frac] = now
                if count >= backlog or now - started > 600:
                    break
                await asyncio.sleep(0.25)
            if len(marks) < 2:
                sys.exit(f"error: only {count} of {backlog} canonical events after {now - started:.0f}s")
            throughput = 0.8 * backlog / (marks[0.9] - marks[0.1])

            # latency phase
            interval = 1 / args.rate
            sent = 0
            phase_start = time.perf_counter()
            next_at = phase_start
            first_order = args.orders + 1
            while time.perf_counter() - phase_start < args.duration:
                order = first_order + sent
                await publish(producer, raw_topic, envelope("shopify_orders_create", event_id=f"l{order}", order=order))
                sent += 1
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            latencies = await read_latencies(bootstrap, canonical_topic, sent)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)

    print(
        f"\nnormalizer bench: {args.orders} orders x 3 events, 6 partitions, {args.processes} process(es),"
        f" cores={os.cpu_count()}"
    )
    print(f"{'what':44} {'value':>12}")
    print(f"{'ceiling: bare consume + Avro decode':44} {ceiling_rate:10.0f}/s")
    print(f"{'normalizer: raw -> canonical (backlog)':44} {throughput:10.0f}/s")
    print(f"{'normalizer / ceiling':44} {throughput / ceiling_rate:12.2f}")
    print(f"{'added latency at ' + str(args.rate) + '/s: p50':44} {pct(latencies, 0.5):10.1f}ms")
    print(f"{'added latency p95':44} {pct(latencies, 0.95):10.1f}ms")
    print(f"{'added latency p99':44} {pct(latencies, 0.99):10.1f}ms")
    print(f"{'normalizer peak RSS (all processes)':44} {peak_rss:10.0f}MB")


async def read_latencies(bootstrap: str, topic: str, expect: int) -> list[float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-latency-{time.time()}",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    latencies: list[float] = []
    deadline = time.monotonic() + 60
    try:
        while len(latencies) < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for r in records:
                    event = CANONICAL.decode(r.value, list(r.headers))
                    if event["event_id"].startswith("l"):
                        latencies.append(r.timestamp - event["received_at"].timestamp() * 1000)
    finally:
        await consumer.stop()
    return latencies


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (HookstreamError, psycopg.OperationalError) as exc:
        sys.exit(f"error: {exc}; start the stack with `hookstream dev up`")

"""Tracing off, on at 100 % and on at 10 % sampling, spans exported over OTLP/HTTP to a local sink process.

    python bench/tracing.py [--duration 10] [--workers 2]            # bench/ingress.py three times
    python bench/tracing.py --e2e [--rate 100] [--duration 30]       # bench/e2e.py three times

Needs what the underlying bench needs (a running stack, wrk, Go). Ingress: the saturation throughput
of each mode against tracing off and against its own run's bare-Starlette ceiling. End to end: each
mode's pipeline CPU-s per 1,000 webhooks and webhook → partner latency at a fixed offered rate.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hookstream_tools.devstack.process import free_port  # noqa: E402

SINK = """
import sys
from aiohttp import web
spans = 0
async def traces(request):
    await request.read()
    return web.Response(content_type="application/x-protobuf", body=b"")
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/traces", traces)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""

MODES = {
    "off": {},
    "on, 100 %": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    "on, 10 %": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
}


def runs(command: list[str]) -> Iterator[tuple[str, str]]:
    """``command`` once per tracing mode (its output printed as it is), spans going to a local sink."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    time.sleep(1.0)
    try:
        for mode, extra in MODES.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            if mode != "off":
                env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", **extra}
            print(f"\n=== tracing {mode}", flush=True)
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            print(out)
            yield mode, out
    finally:
        sink.terminate()
        sink.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--e2e", action="store_true", help="the whole pipeline (bench/e2e.py) instead of ingress")
    parser.add_argument("--rate", type=int, default=100, help="events/s offered in the --e2e runs")
    args = parser.parse_args()
    if args.e2e:
        return end_to_end(args)
    command = [sys.executable, str(ROOT / "bench" / "ingress.py"), "--duration", str(args.duration)]
    command += ["--workers", str(args.workers)]
    results: dict[str, tuple[float, float]] = {}
    for mode, out in runs(command):
        bare, ours = (float(m) for m in re.findall(r"^(?:bare|ingress)\s+saturation \(wrk -c64\)\s+(\d+)", out, re.M))
        results[mode] = (ours, ours / bare)
    off = results["off"][0]
    print(f"{'tracing':12} {'req/s at saturation':>20} {'vs off':>8} {'vs bare, same run':>18}")
    for mode, (rps, ratio) in results.items():
        print(f"{mode:12} {rps:20.0f} {rps / off:8.2f} {ratio:18.2f}")


def end_to_end(args: argparse.Namespace) -> None:
    command = [sys.executable, str(ROOT / "bench" / "e2e.py"), "--rates", str(args.rate)]
    command += ["--duration", str(args.duration), "--idle", "5"]
    rows = []
    for mode, out in runs(command):
        row = re.search(
            rf"^\s*{args.rate}/s\s+\d+/\d+\s+\d+\s+\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\S+\s+\S+\s+([\d.]+)",
            out,
            re.M,
        )
        assert row is not None, out
        rows.append((mode, *(float(v) for v in row.groups())))
    off_cpu = rows[0][4]
    print(f"{'tracing':12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU-s/1k':>9} {'vs off':>7}")
    for mode, p50, p95, p99, cpu in rows:
        print(f"{mode:12} {p50:8.1f} {p95:8.1f} {p99:8.1f} {cpu:9.2f} {cpu / off_cpu:7.2f}")


if __name__ == "__main__":
    main()

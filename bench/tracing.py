"""Ingress with tracing off, on at 100 % and on at 10 % sampling: `bench/ingress.py` three times, its
bare-Starlette ceiling measured in each run, spans exported over OTLP/HTTP to a local sink process.

    python bench/tracing.py [--duration 10] [--workers 2]

Needs what bench/ingress.py needs (a running stack, wrk, Go). Prints each run's table, then the
saturation throughput of each mode against tracing off and against its own run's bare ceiling.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    time.sleep(1.0)
    results: dict[str, tuple[float, float]] = {}
    try:
        for mode, extra in MODES.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            if mode != "off":
                env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", **extra}
            print(f"\n=== tracing {mode}", flush=True)
            out = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "ingress.py"),
                    "--duration",
                    str(args.duration),
                    "--workers",
                    str(args.workers),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            print(out)
            bare, ours = (
                float(m) for m in re.findall(r"^(?:bare|ingress)\s+saturation \(wrk -c64\)\s+(\d+)", out, re.M)
            )
            results[mode] = (ours, ours / bare)
    finally:
        sink.terminate()
        sink.wait()
    off = results["off"][0]
    print(f"{'tracing':12} {'req/s at saturation':>20} {'vs off':>8} {'vs bare, same run':>18}")
    for mode, (rps, ratio) in results.items():
        print(f"{mode:12} {rps:20.0f} {rps / off:8.2f} {ratio:18.2f}")


if __name__ == "__main__":
    main()

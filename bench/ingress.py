"""Ingress throughput and latency against a bare Starlette endpoint measured in the same run.

    python bench/ingress.py [--workers 2] [--duration 10]

Needs `wrk` (Debian package `wrk`) for saturation and Go for the fixed-rate runs: bench/loadgen
is an open-loop generator that measures latency from each request's scheduled send time (no
coordinated omission). Uses KAFKA_BOOTSTRAP_SERVERS / .hookstream/stack.env (run `hookstream dev up`).
Every request is the Shopify `orders/create` sample, signed (a redelivery is accepted again).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hookstream.settings import StackSettings  # noqa: E402
from hookstream_tools.devstack.process import free_port  # noqa: E402

from bench.common import build_loadgen  # noqa: E402
from tests.signing import SHOPIFY_SECRET, load_sample, sign  # noqa: E402


def start_server(kind: str, port: int, workers: int, config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOOKSTREAM_LOG_LEVEL": "WARNING"}
    if kind == "bare":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(port),
            "--health-port",
            "0",
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "hookstream",
            "run",
            "ingress",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--config",
            str(config),
        ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/webhooks/x", data=b"{}", timeout=1)
        except urllib.error.HTTPError:
            return proc
        except OSError:
            time.sleep(0.2)
            continue
        return proc
    raise RuntimeError(f"{kind} server did not start: {proc.stderr.read() if proc.stderr else ''}")


def rss_mb(proc: subprocess.Popen[bytes]) -> float:
    parent = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) / 2**20


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk(url: str, lua: Path, duration: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{duration}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
        lat[pct] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {
        "rps": rps,
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "p50": lat["50"],
        "p90": lat["90"],
        "p99": lat["99"],
    }


def fixed_rate(
    loadgen: Path, url: str, headers: dict[str, str], body_file: Path, rate: int, duration: int
) -> dict[str, float]:
    cmd = [str(loadgen), "-url", url, "-rate", str(rate), "-duration", f"{duration}s", "-body", str(body_file)]
    for k, v in headers.items():
        cmd += ["-header", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=") for item in out.split())
    return {
        "rps": float(fields["rps"]),
        "errors": float(fields["errors"]),
        "p50": float(fields["p50"]),
        "p90": float(fields["p95"]),
        "p99": float(fields["p99"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("error: wrk is needed for the saturation runs (Debian: apt-get install wrk)")
    StackSettings().require_kafka()

    headers, body = load_sample("shopify_orders_create")
    signed = sign("shopify", headers, body)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(
            f'[ingress]\ntopic = "bench.ingress.{int(time.time())}"\n\n'
            f'[channels.shopify]\nkind = "shopify"\nsecrets = ["{SHOPIFY_SECRET}"]\n'
        )
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        loadgen = build_loadgen(Path(tmp))
        lua = Path(tmp) / "post.lua"
        lua.write_text(
            'wrk.method = "POST"\nwrk.body = [==['
            + body.decode()
            + "]==]\n"
            + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in signed.items())
        )
        rows: list[tuple[str, str, dict[str, float], float]] = []
        for kind in ("bare", "ingress"):
            port = free_port()
            proc = start_server(kind, port, args.workers, config)
            url = f"http://127.0.0.1:{port}/webhooks/shopify"
            try:
                wrk(url, lua, 3)  # warm-up
                for rate in (1000, 5000):
                    rows.append(
                        (
                            kind,
                            f"{rate}/s",
                            fixed_rate(loadgen, url, signed, body_file, rate, args.duration),
                            rss_mb(proc),
                        )
                    )
                rows.append((kind, "saturation (wrk -c64)", wrk(url, lua, args.duration), rss_mb(proc)))
            finally:
                stop(proc)

    print(
        f"\nworkers={args.workers}, duration={args.duration}s per run, body={len(body)} bytes, cores={os.cpu_count()}"
    )
    columns = ("req/s", 9), ("non-200", 8), ("p50 ms", 8), ("p95/90 ms", 10), ("p99 ms", 8), ("RSS MB", 7)
    print(f"{'server':8} {'load':22} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for kind, load, r, rss in rows:
        print(
            f"{kind:8} {load:22} {r['rps']:9.0f} {r['errors']:8.0f} {r['p50']:8.2f} {r['p90']:10.2f} "
            f"{r['p99']:8.2f} {rss:7.0f}"
        )
    bare = next(r for k, load, r, _ in rows if k == "bare" and load.startswith("saturation"))
    ours = next(r for k, load, r, _ in rows if k == "ingress" and load.startswith("saturation"))
    print(f"\ningress / bare ceiling at saturation: {ours['rps'] / bare['rps']:.2f}")
    print("(fixed-rate rows: p95; wrk rows: p90, as wrk reports)")


if __name__ == "__main__":
    main()

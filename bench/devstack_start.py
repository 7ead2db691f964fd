"""Start-up figures for the local stack: cold (jars resolved from Maven Central into an
empty cache and an empty Maven repository) and warm (jars cached, data formatted).

Prints seconds to Kafka-ready and PostgreSQL-ready, with a bare JVM start (`java -version`)
measured in the same run as the floor no JVM-based broker can beat.

    python bench/devstack_start.py [--warm-runs 3] [--skip-cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hookstream.settings import StackSettings
from hookstream_tools.devstack import DevStack
from hookstream_tools.devstack.process import free_port
from hookstream_tools.devstack.settings import DevStackSettings


def _settings(state_dir: Path, cache: Path) -> DevStackSettings:
    return DevStackSettings(
        state_dir=state_dir,
        cache_dir=cache,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
    )


def _up(settings: DevStackSettings) -> tuple[DevStack, dict[str, float], float]:
    stack = DevStack(settings, StackSettings(_env_file=None, KAFKA_BOOTSTRAP_SERVERS=None, DATABASE_URL=None))
    started = time.monotonic()
    status = stack.up()
    return stack, status.timings_s, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()

    t0 = time.monotonic()
    subprocess.run(["java", "-version"], capture_output=True, check=True)
    jvm_floor = time.monotonic() - t0

    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="hookstream-bench-") as tmp:
        root = Path(tmp)
        cache = root / "cache"
        if not args.skip_cold:
            os.environ["MAVEN_OPTS"] = f"-Dmaven.repo.local={root / 'm2'}"  # nothing pre-downloaded
            settings = _settings(root / "cold", cache)
            stack, timings, total = _up(settings)
            stack.down()
            rows.append(
                (
                    "cold: resolve + format + start",
                    timings.get("kafka_ready", 0),
                    timings.get("postgres_ready", 0),
                    total,
                )
            )
            print(f"cold jar resolution: {timings.get('jars_resolved', 0):.1f} s", flush=True)
            os.environ.pop("MAVEN_OPTS")
        else:
            DevStack(_settings(root / "cold", cache)).jars.resolve()
        # First warm start still formats storage and runs initdb; later ones reuse the data.
        settings = _settings(root / "warm", cache)
        stack, timings, total = _up(settings)
        stack.down()
        rows.append(("first start (format, initdb)", timings["kafka_ready"], timings["postgres_ready"], total))
        warm: list[tuple[float, float, float]] = []
        for _ in range(args.warm_runs):
            stack, timings, total = _up(settings)
            stack.down()
            warm.append((timings["kafka_ready"], timings["postgres_ready"], total))
        for i, (k, p, t) in enumerate(warm, 1):
            rows.append((f"warm start #{i}", k, p, t))
        rows.append(("warm median", *(statistics.median(c) for c in zip(*warm, strict=True))))

    print(f"\nreference: bare JVM start (`java -version`) {jvm_floor:.2f} s\n")
    print(f"{'run':32} {'kafka ready s':>14} {'postgres ready s':>17} {'total s':>8}")
    for name, k, p, t in rows:
        print(f"{name:32} {k:14.2f} {p:17.2f} {t:8.2f}")


if __name__ == "__main__":
    main()

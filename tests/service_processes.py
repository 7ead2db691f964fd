"""`hookstream run <service>` as real processes for end-to-end tests: one test's private pipeline."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def processes(commands: list[tuple[list[str], dict[str, str]]], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start each (command, environment), its output in ``logs/<n>.log``; SIGTERM them all at the end."""
    started = []
    try:
        for i, (command, env) in enumerate(commands):
            log = (logs / f"{i}.log").open("wb")
            started.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield started
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def logs(folder: Path) -> str:
    """The tail of every process's log, for a failure message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(folder.glob("*.log")))


def pipeline_env(unique_name: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per service, the settings that give normalizer and delivery this test's own topics and names;
    and the topics (raw, canonical, deliveries)."""
    topics = {t: f"{unique_name}.{t}" for t in ("raw", "canonical", "deliveries")}
    env = {
        "normalizer": {
            "HOOKSTREAM_NORMALIZER_SERVICE_NAME": f"normalizer-{unique_name}",
            "HOOKSTREAM_NORMALIZER_RAW_TOPIC": topics["raw"],
            "HOOKSTREAM_NORMALIZER_CANONICAL_TOPIC": topics["canonical"],
        },
        "delivery": {
            "HOOKSTREAM_DELIVERY_SERVICE_NAME": f"delivery-{unique_name}",
            "HOOKSTREAM_DELIVERY_CANONICAL_TOPIC": topics["canonical"],
            "HOOKSTREAM_DELIVERY_DELIVERIES_TOPIC": topics["deliveries"],
            "HOOKSTREAM_DELIVERY_ALLOW_TARGETS": "loopback",
            "HOOKSTREAM_DELIVERY_SUBSCRIPTION_REFRESH_MS": "100",
        },
    }
    return env, topics

"""`hookstream run <service>` as real processes for end-to-end tests: one test's private pipeline."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hookstream_tools.sandbox import SandboxServers

from tests.keys import TEST_SECRETS_KEYS


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


def http_status(url: str) -> int | str:
    """The status a GET of ``url`` answers, or the name of the error when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a test's own local URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


def logs(folder: Path) -> str:
    """The tail of every process's log, for a failure message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(folder.glob("*.log")))


def pipeline_env(
    unique_name: str, systems: SandboxServers | None = None
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per service, the settings that give it this test's own topics and names, and the topics (raw,
    canonical, deliveries, alerts, risk, fulfillment). Normalizer and delivery always; with the
    sandbox's ``systems``, every workflow (talking to them) and the admin too."""
    topics = {t: f"{unique_name}.{t}" for t in ("raw", "canonical", "deliveries", "alerts", "risk", "fulfillment")}
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
            "HOOKSTREAM_DELIVERY_ALERTS_TOPIC": topics["alerts"],
            "HOOKSTREAM_DELIVERY_ALLOW_TARGETS": "loopback",
            "HOOKSTREAM_DELIVERY_SUBSCRIPTION_REFRESH_MS": "100",
            "HOOKSTREAM_SECRETS_KEYS": TEST_SECRETS_KEYS,  # as the test's own stores (conftest sets it too)
        },
    }
    if systems is None:
        return env, topics
    mail = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(systems.smtp_port), "SENDER": "Shop <orders@shop.example>"}
    own = {
        "crm": {"URL": systems.url("crm")},
        "inventory": {"URL": systems.url("erp")},
        "risk": {"URL": systems.url("risk"), "VERDICT_TOPIC": topics["risk"]},
        "fulfillment": {
            "URL": systems.url("warehouse"),
            "RISK_TOPIC": topics["risk"],
            "RISK_SERVICE": f"risk-{unique_name}",
            "FULFILLMENT_TOPIC": topics["fulfillment"],
            **mail,
        },
        "notifications": {"SMS_URL": systems.url("sms"), **mail},
    }
    for service, settings in own.items():
        named = {"SERVICE_NAME": f"{service}-{unique_name}", "INPUT_TOPIC": topics["canonical"], **settings}
        env[service] = {f"HOOKSTREAM_{service.upper()}_{k}": v for k, v in named.items()}
    env["admin"] = {
        "HOOKSTREAM_ADMIN_DELIVERIES_TOPIC": topics["deliveries"],
        "HOOKSTREAM_ADMIN_ALERTS_TOPIC": topics["alerts"],
        "HOOKSTREAM_ADMIN_ALERT_FEED_NAME": f"admin-alerts-{unique_name}",
        "HOOKSTREAM_SECRETS_KEYS": TEST_SECRETS_KEYS,
    }
    return env, topics

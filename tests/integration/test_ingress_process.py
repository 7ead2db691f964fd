"""`hookstream run ingress` as a process: ready, then SIGTERM while webhooks are in flight.

Graceful shutdown must answer the requests it accepted and flush the producer: every 200 is on
the topic, and the process exits 0 on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hookstream.kafka.headers import EVENT_ID, header_dict
from hookstream_tools.devstack.process import free_port

from tests.kafka_helpers import read_topic
from tests.service_processes import http_status
from tests.signing import load_sample, sign, write_config


def _start_ingress(kafka_bootstrap: str, topic: str, folder: Path, *options: str) -> subprocess.Popen[bytes]:
    config = write_config(folder / "hookstream.toml", topic=topic)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "HOOKSTREAM_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "hookstream", "run", "ingress", *options, "--config", str(config)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while http_status(url) != 200:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "ingress did not become ready within 60 s"
        time.sleep(0.2)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int | str:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - our own http URL
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError as exc:
        return "refused" if isinstance(exc.reason, ConnectionRefusedError) else repr(exc.reason)
    except OSError as exc:
        return repr(exc)


def test_sigterm_drains_in_flight_webhooks(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    port = free_port()
    proc = _start_ingress(kafka_bootstrap, unique_name, tmp_path, "--port", str(port), "--health-port", "0")
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/readyz")

        headers, template = load_sample("shopify_orders_create")
        payload = json.loads(template)
        requests = []
        for i in range(300):
            webhook_id = f"drain-{i}"
            payload["id"] = 9_000_000 + i
            body = json.dumps(payload).encode()
            requests.append((webhook_id, body, sign("shopify", {**headers, "X-Shopify-Webhook-Id": webhook_id}, body)))

        url = f"http://127.0.0.1:{port}/webhooks/shopify"
        with ThreadPoolExecutor(max_workers=32) as pool:
            futures = [pool.submit(_post, url, body, h) for _, body, h in requests]
            while sum(f.done() for f in futures) < 20:  # well under way, most still in flight
                time.sleep(0.005)
            proc.send_signal(signal.SIGTERM)
            outcomes = {webhook_id: f.result() for (webhook_id, _, _), f in zip(requests, futures, strict=True)}
        assert proc.wait(60) == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    accepted = {webhook_id for webhook_id, outcome in outcomes.items() if outcome == 200}
    # Every HTTP answer is a 200 or a retry-able 503. Requests the server had not read when it stopped
    # accepting found the door closed (refused, or a reset of an accepted-but-unread connection):
    # no 200 was sent for them, so the sender retries them.
    assert {o for o in outcomes.values() if isinstance(o, int)} <= {200, 503}
    assert len(accepted) >= 20
    records = read_topic(kafka_bootstrap, unique_name, expect=len(accepted), timeout_s=30)
    on_topic = {header_dict(m.headers())[EVENT_ID].decode() for m in records}
    assert accepted <= on_topic, f"accepted but not stored: {sorted(accepted - on_topic)[:5]}"
    # And the reverse: a request cut while in flight would have stored its event without a 200.
    assert on_topic <= accepted, f"stored but never answered 200: {sorted(on_topic - accepted)[:5]}"


def test_metrics_are_served_only_on_the_probe_port(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    """What the ingress counts (channels, rates, failures) is not for whoever reaches its webhook endpoint."""
    public, probes = free_port(), free_port()
    proc = _start_ingress(
        kafka_bootstrap, unique_name, tmp_path, "--port", str(public), "--health-port", str(probes), "--workers", "2"
    )
    try:
        _wait_ready(proc, f"http://127.0.0.1:{probes}/readyz")
        assert http_status(f"http://127.0.0.1:{public}/metrics") == 404
        json_type = {"Content-Type": "application/json"}
        assert _post(f"http://127.0.0.1:{public}/webhooks/shopify", b"{}", json_type) == 401  # counted
        with urllib.request.urlopen(f"http://127.0.0.1:{probes}/metrics", timeout=5) as answer:
            assert b"hookstream_http_requests" in answer.read()
        assert http_status(f"http://127.0.0.1:{public}/readyz") == 200  # a load balancer may check it there
        assert _post(f"http://127.0.0.1:{probes}/webhooks/shopify", b"{}", {}) == 404  # no webhooks on the probes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""A real Prometheus (Debian's package) scrapes every `hookstream run <service>` (ingress, normalizer,
delivery, each workflow against the sandbox's systems, admin) while signed webhooks flow to a
rate-limited partner; PromQL over its HTTP API gives the counts the test sent in every service, a
non-zero lag series, end-to-end latency, and every Grafana dashboard query evaluates."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hookstream.db import Database
from hookstream.store.subscriptions import SubscriptionStore
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers

from tests.keys import KEYRING
from tests.partner import running_partner
from tests.service_processes import logs, pipeline_env, processes
from tests.signing import load_sample, sign, write_config
from tests.waiting import until

WEBHOOKS = 10
SERVICES = ["ingress", "normalizer", "delivery", "crm", "inventory", "risk", "fulfillment", "notifications", "admin"]
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "grafana-dashboard.json"


async def test_prometheus_scrapes_every_service_and_promql_counts_the_flow(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path, sandbox: SandboxServers
) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("needs Prometheus: `apt-get install prometheus` (Debian; .ci/run installs it)")
    env, topics = pipeline_env(unique_name, sandbox)
    raw = topics["raw"]
    consumers = [s for s in SERVICES if s not in ("ingress", "admin")]
    names = {s: env[s][f"HOOKSTREAM_{s.upper()}_SERVICE_NAME"] for s in consumers}
    ports = {name: free_port() for name in [*SERVICES, "prometheus", "admin-api", "ingress-public"]}
    base = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_LOG_LEVEL": "WARNING",
        "HOOKSTREAM_ADMIN_PORT": str(ports["admin-api"]),
    }
    config = write_config(tmp_path / "ingress.toml", topic=raw)
    scrape = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{ports[name]}"]}]} for name in SERVICES
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(scrape))  # JSON is YAML
    run = [sys.executable, "-m", "hookstream", "run"]
    commands = [
        # /metrics on the probe port (scraped), webhooks on the public one.
        (
            [
                *run,
                "ingress",
                "--port",
                str(ports["ingress-public"]),
                "--health-port",
                str(ports["ingress"]),
                "--config",
                str(config),
            ],
            base,
        ),
        *(
            ([*run, name, "--health-port", str(ports[name])], {**base, **env.get(name, {})})
            for name in SERVICES
            if name != "ingress"
        ),
        (
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            dict(os.environ),
        ),
    ]
    api = f"http://127.0.0.1:{ports['prometheus']}/api/v1/query"

    async with running_partner() as partner, Database(migrated_database_url) as db:
        # One webhook a second: the sending consumer falls behind the burst, so lag is seen non-zero.
        await SubscriptionStore(db, KEYRING).add(
            name="slow", url=f"{partner.url}/slow", event_types=["order.*"], rate_limit_per_s=1
        )
        with processes(commands, tmp_path) as procs:
            async with aiohttp.ClientSession() as http:

                async def query(promql: str) -> list[dict[str, Any]]:
                    async with http.get(api, params={"query": promql}) as response:
                        body = await response.json()
                    assert body["status"] == "success", (promql, body)
                    return list(body["data"]["result"])

                async def value(promql: str) -> float | None:
                    try:
                        found = await query(promql)
                    except aiohttp.ClientError:
                        return None  # Prometheus is still starting
                    return float(found[0]["value"][1]) if found else None

                async def all_up() -> bool:
                    assert all(p.poll() is None for p in procs), logs(tmp_path)
                    return await value("sum(up)") == len(SERVICES)

                await until(all_up, 120, lambda: f"Prometheus to scrape every service\n{logs(tmp_path)}")
                headers, template = load_sample("shopify_orders_create")
                payload = json.loads(template)
                for i in range(WEBHOOKS):
                    payload["id"] = 8_100_000 + i
                    body = json.dumps(payload).encode()
                    signed = sign("shopify", {**headers, "X-Shopify-Webhook-Id": f"prom-{i}"}, body)
                    async with http.post(
                        f"http://127.0.0.1:{ports['ingress-public']}/webhooks/shopify", data=body, headers=signed
                    ) as answer:
                        assert answer.status == 200, await answer.text()
                await until(lambda: len(partner.at("/slow")) >= WEBHOOKS, 60, "every webhook at the partner")

                async def counted(promql: str, expected: float) -> bool:
                    return await value(promql) == expected

                normalizer = f'{{service="{names["normalizer"]}"}}'
                sending = f'{{service="{names["delivery"]}-send"}}'
                checks = {
                    'sum(hookstream_http_requests_total{channel="shopify", status="200"})': WEBHOOKS,
                    f"sum(hookstream_records_handled_total{normalizer})": WEBHOOKS,
                    'sum(hookstream_delivery_attempts_total{outcome="delivered"})': WEBHOOKS,
                    f"sum(hookstream_end_to_end_seconds_count{sending})": WEBHOOKS,
                }
                for service in ("crm", "inventory", "risk", "fulfillment", "notifications"):
                    # each workflow handled every canonical event (the ones it has nothing to do for too)
                    checks[f'sum(hookstream_records_handled_total{{service="{names[service]}"}})'] = WEBHOOKS
                for promql, expected in checks.items():
                    await until(lambda p=promql, e=expected: counted(p, e), 30, f"{promql} == {expected}")
                behind = await value(f"max_over_time(sum(hookstream_consumer_lag{sending})[5m:1s])")
                assert behind is not None
                assert behind > 0  # the rate-limited partner held the sending consumer back
                p95 = await value(
                    f"histogram_quantile(0.95, sum by (le) (hookstream_end_to_end_seconds_bucket{sending}))"
                )
                assert p95 is not None
                assert p95 > 0
                dashboard = json.loads(DASHBOARD.read_text())
                for panel in dashboard["panels"]:
                    for target in panel["targets"]:
                        await query(target["expr"])  # every dashboard query is valid PromQL over these series

"""Replay: a workflow's group reset to a time, with our CLI and with Kafka's own tool, reads its input
again; idempotent steps make that repeat no effect. A running group is refused with what to do."""

from __future__ import annotations

import asyncio
import getpass
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hookstream.db import Database
from hookstream.store.audit import AuditLog
from hookstream.store.tokens import TokenStore
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_tools.devstack import KafkaJars
from hookstream_tools.devstack.settings import DevStackSettings
from hookstream_tools.sandbox import SandboxServers

from tests.integration.test_crm import order_events
from tests.waiting import until

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def hookstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookstream", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_replay_reads_the_input_again_and_repeats_no_effect(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, sandbox: SandboxServers, publish: Any
) -> None:
    name = f"crm-{unique_name}"
    settings = CrmSettings(url=sandbox.url("crm"), commit_interval_ms=200, service_name=name, input_topic=publish.topic)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_CRM_SERVICE_NAME": name,  # the CLI finds the consumer through the registry, as configured
        "HOOKSTREAM_CRM_INPUT_TOPIC": publish.topic,
        "HOOKSTREAM_CRM_URL": sandbox.url("crm"),
    }
    events = order_events(34)  # 102 events: created, paid, shipped of 34 orders
    since = datetime.now(UTC) - timedelta(seconds=2)
    effects_at_first: int

    async def run_until_read(expected: int) -> None:
        async with CrmService(kafka_bootstrap, migrated_database_url, settings=settings) as service:
            await until(
                lambda: service.consumer.metrics.processed >= expected,
                timeout_s=90,
                what=lambda: f"{expected} events handled, have {service.consumer.metrics.processed}",
            )
            await asyncio.sleep(0.5)  # its commit

    async with CrmService(kafka_bootstrap, migrated_database_url, settings=settings) as service:
        await publish(*events)
        await until(lambda: service.consumer.metrics.processed >= len(events), timeout_s=90, what="102 events handled")
        effects_at_first = len(sandbox.sandbox.effects("crm"))
        # Running: refused, saying what to do.
        refused = await asyncio.to_thread(hookstream, env, "replay", name, "--to-datetime", since.isoformat())
        assert refused.returncode == 1
        assert f"stop `hookstream run {name}`" in refused.stderr
        await asyncio.sleep(0.5)  # its last commit
    assert effects_at_first == 34 * 4  # contact, order, paid, shipped

    lag = await asyncio.to_thread(hookstream, env, "lag", name)
    assert lag.returncode == 0, lag.stderr
    assert f"{name}" in lag.stdout
    assert "lag 0" in lag.stdout
    dry = await asyncio.to_thread(hookstream, env, "replay", name, "--to-datetime", since.isoformat(), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 102 record(s) would be read again" in dry.stdout
    done = await asyncio.to_thread(hookstream, env, "replay", name, "--to-datetime", since.isoformat())
    assert done.returncode == 0, done.stderr
    assert "reset: 102 record(s)" in done.stdout
    async with Database(migrated_database_url) as db:
        [entry] = await AuditLog(db).recent(target=name)
    assert (entry.actor, entry.action, entry.after["to"]) == (
        f"cli:{getpass.getuser()}",
        "consumer.replay",
        since.isoformat(),
    )

    calls_before = len(sandbox.sandbox.calls)
    await run_until_read(len(events))  # every event read again ...
    assert len(sandbox.sandbox.effects("crm")) == effects_at_first  # ... and no effect repeated
    assert len(sandbox.sandbox.calls) == calls_before  # finished steps are not even called again

    # Kafka's own tool on our group, unchanged.
    jars = KafkaJars(DevStackSettings().cache_dir)
    when = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000")
    reset = await asyncio.to_thread(
        jars.run_tool,
        CONSUMER_GROUP_COMMAND,
        "--bootstrap-server", kafka_bootstrap,
        "--group", f"hookstream.{name}",
        "--topic", publish.topic,
        "--reset-offsets", "--to-datetime", when, "--execute",
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    await run_until_read(len(events))
    assert len(sandbox.sandbox.effects("crm")) == effects_at_first
    bad = await asyncio.to_thread(hookstream, env, "replay", name, "--to-datetime", "2026-12-01T08:00:00")
    assert (bad.returncode, "needs its time zone" in bad.stderr) == (2, True)
    unknown = await asyncio.to_thread(hookstream, env, "replay", "nobody", "--to-datetime", since.isoformat())
    assert (unknown.returncode, "no consumer 'nobody'" in unknown.stderr) == (2, True)


async def test_the_admin_api_replays_a_stopped_consumer_and_refuses_a_running_one(
    kafka_bootstrap: str,
    migrated_database_url: str,
    unique_name: str,
    sandbox: SandboxServers,
    publish: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"crm-{unique_name}"
    monkeypatch.setenv("HOOKSTREAM_CRM_SERVICE_NAME", name)  # the admin finds consumers through the registry
    monkeypatch.setenv("HOOKSTREAM_CRM_INPUT_TOPIC", publish.topic)
    settings = CrmSettings(url=sandbox.url("crm"), commit_interval_ms=200, service_name=name, input_topic=publish.topic)
    events = order_events(10)
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    async with Database(migrated_database_url) as db:
        _, admin_token = await TokenStore(db).create("ops", "admin")
        _, write_token = await TokenStore(db).create("deployer", "write")
    admin_settings = AdminSettings(port=0, deliveries_topic=f"{unique_name}.deliveries")
    async with AdminService(kafka_bootstrap, migrated_database_url, settings=admin_settings) as admin:
        url = f"{admin.server.url}/api/v1/consumers/{name}/replay"

        async def post(body: dict[str, Any], token: str = admin_token) -> tuple[int, Any]:
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
                session.post(url, json=body) as response,
            ):
                return response.status, await response.json()

        async with CrmService(kafka_bootstrap, migrated_database_url, settings=settings) as service:
            await publish(*events)
            await until(lambda: service.consumer.metrics.processed >= len(events), timeout_s=60, what="30 handled")
            status, body = await post({"to_datetime": since})
            assert (status, f"stop `hookstream run {name}`" in body["detail"]) == (409, True)
            await asyncio.sleep(0.5)
        effects = len(sandbox.sandbox.effects("crm"))
        assert (await post({"to_datetime": since, "dry_run": True}, write_token))[0] == 403
        status, body = await post({"to_datetime": since[:19]})
        assert (status, "time zone" in body["detail"]) == (422, True)
        status, plan = await post({"to_datetime": since, "dry_run": True})
        assert (status, plan["reprocessed"], plan["dry_run"]) == (200, 30, True)
        status, done = await post({"to_datetime": since})
        assert (status, done["reprocessed"], done["dry_run"]) == (200, 30, False)
        async with CrmService(kafka_bootstrap, migrated_database_url, settings=settings) as service:
            await until(lambda: service.consumer.metrics.processed >= len(events), timeout_s=60, what="30 read again")
            await asyncio.sleep(0.5)
        assert len(sandbox.sandbox.effects("crm")) == effects
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin_token}"}) as session,
            session.get(f"{admin.server.url}/api/v1/consumers") as response,
        ):
            consumers = {c["name"]: c for c in (await response.json())["consumers"]}
        assert (consumers[name]["lag"], consumers[name]["members"]) == (0, 0)
        async with Database(migrated_database_url) as db:
            entries = await AuditLog(db).recent(target=name)
        assert [(e.action, e.actor.endswith(":ops")) for e in entries] == [("consumer.replay", True)]

"""Dead letters through the admin API: every consumer's queue, a dead letter's reason and payload, a
redrive after the fix (the effect happens once), and the errors of a redrive that names nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from hookstream.db import Database
from hookstream.store.tokens import TokenStore
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_tools.sandbox import SandboxServers

from tests.integration.test_delivery import canonical
from tests.sandbox_process import set_faults
from tests.waiting import until


async def test_a_dead_letter_is_shown_with_its_reason_and_redriven_once(
    kafka_bootstrap: str,
    migrated_database_url: str,
    unique_name: str,
    sandbox: SandboxServers,
    publish: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"crm-{unique_name}"
    monkeypatch.setenv("HOOKSTREAM_CRM_SERVICE_NAME", name)  # the admin finds consumers through the registry
    settings = CrmSettings(
        url=sandbox.url("crm"), commit_interval_ms=200, service_name=name, input_topic=publish.topic, timeout_ms=500
    )
    async with Database(migrated_database_url) as db:
        _, reader = await TokenStore(db).create("viewer", "read")
        _, writer = await TokenStore(db).create("ops", "write")
    admin_settings = AdminSettings(port=0, deliveries_topic=f"{unique_name}.deliveries")
    await set_faults(sandbox, "crm", refuse=True)
    async with (
        AdminService(kafka_bootstrap, migrated_database_url, settings=admin_settings) as admin,
        CrmService(kafka_bootstrap, migrated_database_url, settings=settings),
    ):
        base = f"{admin.server.url}/api/v1/dead-letters"

        async def call(method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
                session.request(method, base + path, json=body) as response,
            ):
                return response.status, await response.json()

        await publish(canonical("c1", "shopify:1", 1, "order.created"))

        async def listed() -> bool:
            status, body = await call("GET", f"/{name}", reader)
            return status == 200 and len(body["dead_letters"]) == 1

        await until(listed, timeout_s=30, what="the refused event in the CRM's dead letters")
        _, queues = await call("GET", "", reader)
        mine = next(q for q in queues["queues"] if q["consumer"] == name)
        assert (mine["dead_letters"], mine["not_redriven"]) == (1, 1)
        _, body = await call("GET", f"/{name}", reader)
        [letter] = body["dead_letters"]
        assert "crm PUT /orders/shopify:1 answered 422" in letter["reason"]
        assert letter["event_id"] == "c1"
        assert letter["payload_encoding"] == "base64"  # Avro
        assert letter["headers"]["hookstream-event-id"] == "c1"

        assert (await call("POST", f"/{name}/redrive", reader, {"all": True}))[0] == 403
        status, body = await call("POST", f"/{name}/redrive", writer, {})
        assert (status, "say which dead letters" in body["detail"]) == (422, True)
        status, body = await call("POST", f"/{name}/redrive", writer, {"positions": ["9:999"]})
        assert (status, "9:999" in body["detail"]) == (422, True)
        assert (await call("GET", "/nobody", reader))[0] == 404

        await set_faults(sandbox, "crm")  # the CRM is fixed
        status, body = await call("POST", f"/{name}/redrive", writer, {"positions": [letter["position"]]})
        assert (status, body["redriven"]) == (200, 1)
        await until(lambda: len(sandbox.sandbox.effects("crm")) == 1, timeout_s=30, what="the redriven upsert")
        status, body = await call("POST", f"/{name}/redrive", writer, {"all": True})
        assert (status, body["redriven"]) == (200, 0)  # sent back already: not twice by accident
        await asyncio.sleep(1.0)
        _, body = await call("GET", f"/{name}", reader)
        assert [d["redriven"] for d in body["dead_letters"]] == [True]
    assert len(sandbox.sandbox.effects("crm")) == 1

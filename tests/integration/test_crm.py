"""The CRM workflow against the real broker and database and the sandbox's CRM over real HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hookstream.consumer.dlq import list_dead_letters, redrive
from hookstream.db import Database
from hookstream.kafka import Producer
from hookstream.store.orders import OrderRefs
from hookstream_services.crm.service import CrmService, CrmSettings
from hookstream_tools.sandbox import SandboxServers

from tests.integration.test_delivery import canonical
from tests.sandbox_process import set_faults
from tests.waiting import until


def order_events(n: int) -> list[dict[str, Any]]:
    events = []
    for i in range(n):
        order = f"shopify:{i}"
        created = canonical(f"c{i}", order, 1, "order.created")
        created["customer"] = {
            "id": f"cust{i % 5}",
            "email": f"Buyer{i % 5}@Example.com",
            "name": "Ada",
            "company": None,
        }
        created["items"] = [{"sku": "SKU-1", "title": "Mug", "quantity": 2, "unit_price": "10.00"}]
        events += [created, canonical(f"p{i}", order, 2, "order.paid"), canonical(f"s{i}", order, 3, "order.shipped")]
    return events


@pytest.fixture
async def crm(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, sandbox: SandboxServers, publish: Any
) -> AsyncIterator[dict[str, Any]]:
    settings = CrmSettings(
        url=sandbox.url("crm"),
        timeout_ms=300,
        # 40 % of calls fail below, and an event's steps share its attempts: 13 attempts make a dead
        # letter from bad luck (0.4^13 per call) practically impossible.
        retry_delays=["200ms"] * 4 + ["400ms"] * 8,
        retry_jitter=0,
        commit_interval_ms=200,
        service_name=f"crm-{unique_name}",
        input_topic=publish.topic,
    )
    async with Database(migrated_database_url) as db, Producer(kafka_bootstrap) as producer:
        yield {"settings": settings, "db": db, "publish": publish, "producer": producer}


async def test_every_crm_effect_happens_once_in_order_despite_failures_and_timeouts(
    crm: dict[str, Any], sandbox: SandboxServers, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    # 30 % of calls fail with 503, 10 % are done but answered too late (the client times out).
    await set_faults(sandbox, "crm", fail_rate=0.3, timeout_rate=0.1, hang_ms=600)
    orders = 12
    async with CrmService(kafka_bootstrap, migrated_database_url, settings=crm["settings"]):
        await crm["publish"](*order_events(orders))
        expected = orders * 4  # contact, order, paid, shipped
        await until(
            lambda: len(sandbox.sandbox.effects("crm")) >= expected,
            timeout_s=60,
            what=lambda: f"{expected} CRM effects, have {sandbox.sandbox.summary()['crm']}",
        )
        await asyncio.sleep(1.0)  # anything more would be a repeated effect

    calls = [c for c in sandbox.sandbox.calls if c.system == "crm"]
    effects = [c for c in calls if 200 <= c.status < 300 and not c.replayed]
    assert len(effects) == expected
    assert Counter(c.idempotency_key for c in effects).most_common(1)[0][1] == 1  # each (event, step) once
    assert any(c.fault == "fail" for c in calls)
    assert any(c.replayed for c in calls)  # a timed-out call was retried and answered from its first answer
    # A step that finished (its answer arrived) is never called again: a retry resumes after it.
    answered: set[str | None] = set()
    for c in calls:
        assert c.idempotency_key not in answered, f"finished step called again: {c}"
        if 200 <= c.status < 300 and c.fault is None:
            answered.add(c.idempotency_key)
    for i in range(orders):
        order_effects = [(c.method, c.body.get("status")) for c in effects if c.path == f"/orders/shopify:{i}"]
        assert order_effects == [("PUT", "created"), ("PATCH", "paid"), ("PATCH", "shipped")]
    # Five customers by email (lower-cased), one contact each; the order links to its contact.
    contacts = {p: r for p, r in sandbox.sandbox.systems["crm"].resources.items() if p.startswith("/contacts/")}
    assert sorted(contacts) == [f"/contacts/buyer{i}@example.com" for i in range(5)]
    resource = sandbox.sandbox.systems["crm"].resources["/orders/shopify:3"]
    assert resource["contact_id"] == contacts["/contacts/buyer3@example.com"]["id"]
    assert resource["status"] == "shipped"
    assert resource["items"] == [{"sku": "SKU-1", "quantity": 2}]
    # The CRM's id for each order is kept on the order.
    refs = OrderRefs(crm["db"])
    for i in range(orders):
        crm_id = await refs.get(f"shopify:{i}", "crm")
        assert crm_id == sandbox.sandbox.systems["crm"].resources[f"/orders/shopify:{i}"]["id"]


async def test_a_refused_call_is_dead_lettered_with_the_crm_answer_and_redriven_once(
    crm: dict[str, Any], sandbox: SandboxServers, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    settings: CrmSettings = crm["settings"]
    await set_faults(sandbox, "crm", refuse=True)
    async with CrmService(kafka_bootstrap, migrated_database_url, settings=settings):
        await crm["publish"](canonical("c1", "shopify:1", 1, "order.created"))
        letters: list[Any] = []

        async def dead_lettered() -> bool:
            letters[:] = await list_dead_letters(kafka_bootstrap, crm["db"], settings.service_name)
            return len(letters) == 1

        await until(dead_lettered, timeout_s=30, what="the refused event in the CRM's DLQ")
        reason = letters[0].header("hookstream-error-message") or ""
        assert "crm PUT /orders/shopify:1 answered 422" in reason
        assert "refuses this request" in reason
        assert sandbox.sandbox.effects("crm") == []

        await set_faults(sandbox, "crm")  # the CRM is fixed
        await redrive(crm["producer"], crm["db"], settings.service_name, letters)
        await until(lambda: len(sandbox.sandbox.effects("crm")) == 1, timeout_s=30, what="the redriven upsert")
        await asyncio.sleep(1.0)
    assert len(sandbox.sandbox.effects("crm")) == 1


async def test_crm_without_a_url_does_not_start_and_names_the_setting(
    kafka_bootstrap: str, migrated_database_url: str
) -> None:
    from hookstream.errors import ConfigurationError

    service = CrmService(kafka_bootstrap, migrated_database_url, settings=CrmSettings(), create_topics=False)
    with pytest.raises(ConfigurationError, match="HOOKSTREAM_CRM_URL is not set"):
        await service.start()
    await service.stop()

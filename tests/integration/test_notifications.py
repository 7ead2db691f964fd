"""The notifications workflow against the real broker and database and the sandbox's SMTP server and SMS provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hookstream.db import Database
from hookstream.errors import ConfigurationError
from hookstream_services.notifications.service import NotificationService, NotificationSettings
from hookstream_tools.sandbox import Faults, SandboxServers

from tests.integration.test_delivery import canonical
from tests.waiting import until


def customer_events(order: str, n: int) -> list[dict[str, Any]]:
    created = canonical(f"{order}-c", order, 1, "order.created")
    created["customer"] = {"id": "c1", "email": f"buyer{n}@example.com", "name": "Ada Lovelace", "company": None}
    created["items"] = [{"sku": "MUG-1", "title": "Mug & Saucer", "quantity": 2, "unit_price": "12.50"}]
    shipped = canonical(f"{order}-s", order, 2, "order.shipped")
    shipped["customer"] = created["customer"]
    shipped["tracking"] = [{"carrier": "DHL", "number": f"JD{n:04}", "url": f"https://track.example/JD{n:04}"}]
    shipped["shipping_address"] = {
        "name": "Ada Lovelace",
        "line1": None,
        "line2": None,
        "city": None,
        "region": None,
        "postal_code": None,
        "country": "GB",
        "phone": f"+4412345{n:05}" if n % 2 == 0 else None,
    }
    return [created, shipped]


@pytest.fixture
async def setup(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, sandbox: SandboxServers, publish: Any
) -> AsyncIterator[dict[str, Any]]:
    settings = NotificationSettings(
        smtp_host="127.0.0.1",
        smtp_port=sandbox.smtp_port,
        smtp_timeout_ms=500,
        sender="Shop <orders@shop.example>",
        senders={"custom": "Custom Shop <hello@custom.example>"},
        sms_url=sandbox.url("sms"),
        sms_timeout_ms=500,
        retry_delays=["200ms"] * 4 + ["400ms"] * 8,
        retry_jitter=0,
        commit_interval_ms=200,
        service_name=f"notifications-{unique_name}",
        input_topic=publish.topic,
    )
    async with Database(migrated_database_url) as db:
        yield {"settings": settings, "db": db, "publish": publish}


async def test_customers_get_each_email_and_sms_once_despite_a_flaky_mail_server(
    setup: dict[str, Any], sandbox: SandboxServers, kafka_bootstrap: str, migrated_database_url: str
) -> None:
    sandbox.sandbox.smtp_faults = Faults(fail_rate=0.3)
    sandbox.sandbox.systems["sms"].faults = Faults(fail_rate=0.3, timeout_rate=0.1, hang_ms=800)
    orders = 8
    async with NotificationService(kafka_bootstrap, migrated_database_url, settings=setup["settings"]):
        for n in range(orders):
            await setup["publish"](*customer_events(f"shopify:{n}", n))
        await until(
            lambda: len(sandbox.sandbox.emails) >= 2 * orders and len(sandbox.sandbox.effects("sms")) >= orders // 2,
            timeout_s=60,
            what=lambda: f"{2 * orders} emails and {orders // 2} SMS, have {sandbox.sandbox.summary()}",
        )
        await asyncio.sleep(1.0)  # anything more would be a repeated message

    emails = sandbox.sandbox.emails
    assert sandbox.sandbox.refused_emails > 0  # the mail server did defer some
    assert len(emails) == 2 * orders
    assert len({e["message_id"] for e in emails}) == 2 * orders
    for n in range(orders):
        mine = [e for e in emails if e["rcpt_to"] == [f"buyer{n}@example.com"]]
        assert [e["subject"] for e in mine] == [
            f"Thank you for your order {n}",
            f"Your order {n} is on its way",
        ]
        assert mine[0]["from"] == "Shop <orders@shop.example>"
        assert "2 \u00d7 Mug & Saucer at 12.50 EUR" in mine[0]["text"]
        assert "Mug &amp; Saucer" in mine[0]["html"]  # escaped in HTML only
        assert f"https://track.example/JD{n:04}" in mine[1]["text"]
    sms = sandbox.sandbox.effects("sms")
    assert sorted(c["body"]["to"] for c in sms) == sorted(f"+4412345{n:05}" for n in range(0, orders, 2))
    assert all("has shipped: DHL https://track.example/JD" in c["body"]["text"] for c in sms)


async def test_a_refused_message_is_dead_lettered_and_settings_errors_name_the_setting(
    setup: dict[str, Any], sandbox: SandboxServers, kafka_bootstrap: str, migrated_database_url: str, tmp_path: Path
) -> None:
    from hookstream.consumer.dlq import list_dead_letters

    settings: NotificationSettings = setup["settings"]
    sandbox.sandbox.smtp_faults = Faults(refuse=True)
    async with NotificationService(kafka_bootstrap, migrated_database_url, settings=settings):
        await setup["publish"](customer_events("shopify:1", 1)[0])
        letters: list[Any] = []

        async def dead_lettered() -> bool:
            letters[:] = await list_dead_letters(kafka_bootstrap, setup["db"], settings.service_name)
            return len(letters) == 1

        await until(dead_lettered, timeout_s=30, what="the refused message in the DLQ")
    assert "550 5.7.1 Message refused" in (letters[0].header("hookstream-error-message") or "")
    assert sandbox.sandbox.emails == []

    # An override replaces one file; a broken one stops the service at start, naming the setting.
    (tmp_path / "order_confirmation.subject.txt").write_text("Order {{ order_number }} confirmed")
    good = settings.model_copy(update={"templates_dir": str(tmp_path)})
    sandbox.sandbox.smtp_faults = Faults()
    async with NotificationService(kafka_bootstrap, migrated_database_url, settings=good):
        await setup["publish"](customer_events("shopify:2", 2)[0])
        await until(lambda: len(sandbox.sandbox.emails) == 1, timeout_s=30, what="the confirmation")
    assert sandbox.sandbox.emails[0]["subject"] == "Order 2 confirmed"

    (tmp_path / "shipping_notification.html").write_text("{% for t in tracking %}{{ t.number }")
    for broken, message in [
        (good, "email template shipping_notification.html line 1"),
        (settings.model_copy(update={"templates_dir": str(tmp_path / "nope")}), "TEMPLATES_DIR is"),
        (settings.model_copy(update={"sender": ""}), "HOOKSTREAM_NOTIFICATIONS_SENDER is not set"),
        (settings.model_copy(update={"smtp_host": ""}), "HOOKSTREAM_NOTIFICATIONS_SMTP_HOST is not set"),
    ]:
        service = NotificationService(kafka_bootstrap, migrated_database_url, settings=broken, create_topics=False)
        with pytest.raises(ConfigurationError, match=message):
            await service.start()
        await service.stop()

"""The sandbox's systems over real HTTP and SMTP, and the HTTP connector's reading of their answers."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import aiohttp
import pytest
from hookstream.connectors import Endpoint, HttpConnector, SystemRejected, SystemUnavailable
from hookstream.connectors.email import Mailer, MailRejected, Rendered, SmtpEndpoint
from hookstream.errors import ConfigurationError
from hookstream_tools.devstack.process import free_port
from hookstream_tools.sandbox import SandboxServers
from hookstream_tools.sandbox.systems import Faults

from tests.sandbox_process import SandboxProcess, set_faults


async def test_writes_are_idempotent_by_key_and_faults_are_what_was_asked(sandbox: SandboxServers) -> None:
    crm = HttpConnector(Endpoint("crm", sandbox.url("crm"), "Authorization: Bearer t", timeout_ms=300))
    async with crm:
        first = await crm.call("PUT", "/orders/o1", {"status": "pending"}, idempotency_key="k1")
        again = await crm.call("PUT", "/orders/o1", {"status": "pending"}, idempotency_key="k1")
        assert first == again
        assert first["id"] == "crm_1"
        created = await crm.call("POST", "/contacts", {"email": "a@example.com"}, idempotency_key="k2")
        assert created["id"] == "crm_2"
        # The same key for another request is refused for good, as Stripe does.
        with pytest.raises(SystemRejected) as reused:
            await crm.call("PUT", "/orders/o1", {"status": "paid"}, idempotency_key="k1")
        assert reused.value.status == 422
        assert "idempotency_key_reused" in reused.value.answer
        with pytest.raises(SystemRejected, match="404"):
            await crm.call("PATCH", "/orders/nope", {"status": "paid"}, idempotency_key="k3")

        await set_faults(sandbox, "crm", fail_rate=1.0, retry_after_s=7)
        with pytest.raises(SystemUnavailable) as unavailable:
            await crm.call("PATCH", "/orders/o1", {"status": "paid"}, idempotency_key="k4")
        assert unavailable.value.retriable
        assert unavailable.value.retry_after_ms == 7_000

        await set_faults(sandbox, "crm", timeout_rate=1.0, hang_ms=2_000)
        with pytest.raises(SystemUnavailable, match="no answer within 300 ms"):
            await crm.call("PATCH", "/orders/o1", {"status": "paid"}, idempotency_key="k5")
        # The timed-out write happened: its retry is answered from the first answer, not done again.
        await set_faults(sandbox, "crm")
        replay = await crm.call("PATCH", "/orders/o1", {"status": "paid"}, idempotency_key="k5")
        assert replay["status"] == "paid"

        await set_faults(sandbox, "crm", refuse=True)
        with pytest.raises(SystemRejected, match="422"):
            await crm.call("PUT", "/orders/o2", {}, idempotency_key="k6")

    calls = sandbox.sandbox.calls
    assert all(c.idempotency_key for c in calls)
    assert [(c.idempotency_key, c.status, c.replayed) for c in calls if c.idempotency_key in ("k1", "k5")] == [
        ("k1", 201, False),
        ("k1", 201, True),
        ("k1", 422, False),
        ("k5", 200, False),
        ("k5", 200, True),
    ]
    summary = sandbox.sandbox.summary()["crm"]
    assert summary["effects"] == 3  # o1 created, the contact, o1 patched (k5) — each once
    assert summary["replayed"] == 2


async def test_writes_without_a_key_and_bad_fault_settings_are_refused(sandbox: SandboxServers) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{sandbox.url('crm')}/orders/o1", json={}) as r:
            assert r.status == 400
            assert "Idempotency-Key" in (await r.json())["detail"]
        async with s.put(f"{sandbox.http_url}/_sandbox/faults/crm", json={"fail": 1}) as r:
            assert r.status == 400
            assert "unknown fault setting" in (await r.json())["detail"]
        async with s.put(f"{sandbox.http_url}/_sandbox/faults/nowhere", json={}) as r:
            assert r.status == 404


async def test_connector_settings_are_checked_at_start_with_the_setting_named() -> None:
    for endpoint, message in [
        (Endpoint("crm", "", setting="HOOKSTREAM_CRM_"), "HOOKSTREAM_CRM_URL is not set"),
        (Endpoint("crm", "crm.example.com", setting="HOOKSTREAM_CRM_"), "HOOKSTREAM_CRM_URL must be"),
        (Endpoint("crm", "https://crm.example.com", "Bearer x", setting="HOOKSTREAM_CRM_"), "AUTH_HEADER must look"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            await HttpConnector(endpoint).start()


async def test_an_unreachable_system_is_retriable() -> None:
    async with HttpConnector(Endpoint("crm", f"http://127.0.0.1:{free_port()}", timeout_ms=1_000)) as crm:
        with pytest.raises(SystemUnavailable, match="crm PUT /orders/o1"):
            await crm.call("PUT", "/orders/o1", {}, idempotency_key="k")


async def test_smtp_messages_are_kept_with_their_parts(sandbox: SandboxServers) -> None:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = "ada@example.com"
    message["Subject"] = "Your invoice"
    message["Message-ID"] = "<hs_1@hookstream>"
    message.set_content("plain words")
    message.add_alternative("<p>html words</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="INV-1.pdf")

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)
            smtp.send_message(message)  # a resend: kept, and counted as a duplicate

    await asyncio.to_thread(send)
    emails = sandbox.sandbox.emails
    assert len(emails) == 2
    assert emails[0]["subject"] == "Your invoice"
    assert emails[0]["rcpt_to"] == ["ada@example.com"]
    assert emails[0]["text"].strip() == "plain words"
    assert "html words" in emails[0]["html"]
    assert emails[0]["attachments"] == [{"filename": "INV-1.pdf", "content_type": "application/pdf", "size": 12}]
    assert sandbox.sandbox.summary()["email"] == {"messages": 2, "duplicates": 1, "refused": 0, "connections": 1}


async def test_the_mailer_reuses_its_connection_and_drops_it_after_an_error_or_a_quiet_spell(
    sandbox: SandboxServers,
) -> None:
    world = sandbox.sandbox
    mailer = Mailer(SmtpEndpoint(sandbox.host, sandbox.smtp_port, timeout_ms=5_000), idle_timeout_ms=300)
    await mailer.start()
    subject = "Payment received for your order 5612345678901 (invoice INV-SHOPIFY-000001), thank you"
    rendered = Rendered(subject=subject, text="danke", html="<p>danke</p>")

    async def send(n: int) -> str:
        return await mailer.send(
            sender="Shop <s@shop.example>", to="a@example.com", rendered=rendered, idempotency_key=f"k{n}"
        )

    try:
        for n in range(3):
            await send(n)
        assert world.summary()["email"]["connections"] == 1  # three messages, one connection
        world.smtp_faults = Faults(refuse=True)
        with pytest.raises(MailRejected, match="550"):
            await send(3)
        world.smtp_faults = Faults()
        await send(4)  # the refused message's connection was closed: a new one
        assert world.summary()["email"]["connections"] == 2
        await asyncio.sleep(0.4)  # longer than idle_timeout_ms: the idle connection is not trusted
        await send(5)
        assert world.summary()["email"]["connections"] == 3
        assert [e["message_id"] for e in world.emails] == [f"<k{n}@hookstream>" for n in (0, 1, 2, 4, 5)]
        assert {e["subject"] for e in world.emails} == {subject}  # folded and encoded on the wire, read back whole
    finally:
        await mailer.stop()


def test_hookstream_run_sandbox_serves_until_sigterm(sandbox_process: SandboxProcess) -> None:
    with smtplib.SMTP("127.0.0.1", sandbox_process.smtp_port, timeout=5) as smtp:
        assert smtp.noop()[0] == 250
    code, out, err = sandbox_process.stop()
    assert code == 0, err
    assert f"crm {sandbox_process.url}/crm" in out

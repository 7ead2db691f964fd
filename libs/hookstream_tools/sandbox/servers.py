"""The sandbox's servers: the systems over HTTP (aiohttp) and an SMTP server (aiosmtpd) for email.

HTTP: ``<method> /<system>/<path>`` for crm, warehouse, erp, risk and sms; ``GET`` reads a
resource. Control and inspection under ``/_sandbox``: ``GET summary|calls|effects|emails``
(``?system=`` filters), ``PUT faults/<system>`` with a JSON object of ``Faults`` fields,
``DELETE faults``, ``POST reset``.
"""

from __future__ import annotations

import asyncio
import email
import json
import re
import time
from dataclasses import asdict
from email.header import decode_header, make_header
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from hookstream_tools.sandbox.systems import SYSTEMS, Faults, Sandbox

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json", headers=headers)


def http_app(sandbox: Sandbox) -> web.Application:
    async def system_call(request: web.Request) -> web.StreamResponse:
        name = request.match_info["system"]
        system = sandbox.systems.get(name)
        if system is None:
            return _json({"error": "unknown_system", "detail": f"systems: {', '.join(SYSTEMS)}"}, 404)
        path = "/" + request.match_info["path"]
        if request.method == "GET":
            resource = system.resources.get(path.rstrip("/"))
            return _json(resource, 200) if resource else _json({"error": "not_found"}, 404)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return _json({"error": "invalid_json"}, 400)
        if system.faults.slow_ms:
            await asyncio.sleep(system.faults.slow_ms / 1000)
        fault = sandbox.fault_for(system)
        answer = sandbox.handle(system, request.method, path, request.headers.get("Idempotency-Key"), body, fault)
        if fault == "timeout":
            await asyncio.sleep(system.faults.hang_ms / 1000)  # the write happened; the caller gave up waiting
        return _json(answer.body, answer.status, answer.headers)

    def _filtered(items: list[dict[str, Any]], request: web.Request) -> list[dict[str, Any]]:
        system = request.query.get("system")
        return [i for i in items if system is None or i.get("system") == system]

    async def summary(request: web.Request) -> web.Response:
        return _json(sandbox.summary())

    async def calls(request: web.Request) -> web.Response:
        return _json(_filtered([asdict(c) for c in sandbox.calls], request))

    async def effects(request: web.Request) -> web.Response:
        return _json(sandbox.effects(request.query.get("system")))

    async def emails(request: web.Request) -> web.Response:
        return _json(sandbox.emails)

    async def set_faults(request: web.Request) -> web.Response:
        name = request.match_info["system"]
        if name not in sandbox.systems and name != "smtp":
            return _json({"error": "unknown_system", "detail": f"systems: {', '.join(SYSTEMS)}, smtp"}, 404)
        try:
            faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return _json({"error": "invalid_faults", "detail": str(exc)}, 400)
        if name == "smtp":
            sandbox.smtp_faults = faults
        else:
            sandbox.systems[name].faults = faults
        return _json(asdict(faults))

    async def clear_faults(request: web.Request) -> web.Response:
        for system in sandbox.systems.values():
            system.faults = Faults()
        sandbox.smtp_faults = Faults()
        return _json({"status": "cleared"})

    async def reset(request: web.Request) -> web.Response:
        sandbox.reset()
        return _json({"status": "reset"})

    app = web.Application()
    app.add_routes(
        [
            web.get("/_sandbox/summary", summary),
            web.get("/_sandbox/calls", calls),
            web.get("/_sandbox/effects", effects),
            web.get("/_sandbox/emails", emails),
            web.put("/_sandbox/faults/{system}", set_faults),
            web.delete("/_sandbox/faults", clear_faults),
            web.post("/_sandbox/reset", reset),
            *[web.route(m, "/{system}/{path:.*}", system_call) for m in ("GET", *WRITES)],
        ]
    )
    return app


class MailHandler:
    """Keeps every message the SMTP server accepts, parsed: headers, text, html, attachments."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        faults = self.sandbox.smtp_faults
        if faults.slow_ms:
            await asyncio.sleep(faults.slow_ms / 1000)
        fault = self.sandbox.fault_for(None)
        if fault == "refuse":
            self.sandbox.refused_emails += 1
            return "550 5.7.1 Message refused (sandbox fault)"
        if fault == "fail":
            self.sandbox.refused_emails += 1
            return "451 4.3.0 Try again later (sandbox fault)"
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        self.sandbox.emails.append({"at": time.time(), **parse_email(raw, envelope)})
        if fault == "timeout":
            await asyncio.sleep(faults.hang_ms / 1000)  # kept; the sender gave up waiting and will send it again
        return "250 Message accepted for delivery"


def parse_email(raw: bytes, envelope: Envelope) -> dict[str, Any]:
    """What tests and the demo read of a message. compat32 parsing: the modern policy costs ~4 ms a
    message, which on a shared box slowed every email the bench sends through this server."""
    message = email.message_from_bytes(raw)
    bodies: dict[str, str] = {}
    attachments = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            attachments.append(
                {"filename": part.get_filename(), "content_type": part.get_content_type(), "size": len(content)}
            )
        elif part.get_content_type() in ("text/plain", "text/html"):
            charset = part.get_content_charset() or "us-ascii"
            text = content.decode(charset, "replace").replace("\r\n", "\n")
            bodies.setdefault(part.get_content_subtype(), text)

    def header(name: str) -> str:
        value = message.get(name)
        if value is None:
            return ""
        unfolded = re.sub(r"\r?\n(?=[ \t])", "", str(value))  # RFC 5322 unfolding of long lines
        return str(make_header(decode_header(unfolded))).strip()

    return {
        "mail_from": envelope.mail_from,
        "rcpt_to": list(envelope.rcpt_tos),
        "from": header("From"),
        "to": header("To"),
        "subject": header("Subject"),
        "message_id": header("Message-ID"),
        "text": bodies.get("plain"),
        "html": bodies.get("html"),
        "attachments": attachments,
    }


class SandboxServers:
    """``async with SandboxServers(sandbox, host, http_port, smtp_port)``; port 0 picks a free one."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", http_port: int = 0, smtp_port: int = 0) -> None:
        self.sandbox = sandbox
        self.host = host
        self.http_port = http_port
        self.smtp_port = smtp_port
        self._runner: web.AppRunner | None = None
        self._smtp: asyncio.Server | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def url(self, system: str) -> str:
        return f"{self.http_url}/{system}"

    async def start(self) -> None:
        self._runner = web.AppRunner(http_app(self.sandbox), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.http_port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.http_port = server.sockets[0].getsockname()[1]
        handler = MailHandler(self.sandbox)
        loop = asyncio.get_running_loop()

        def session() -> SMTP:
            self.sandbox.smtp_connections += 1
            return SMTP(handler, hostname="sandbox.local")

        self._smtp = await loop.create_server(session, self.host, self.smtp_port)
        self.smtp_port = self._smtp.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()
            self._smtp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxServers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

"""A partner endpoint started by a test: it answers from a script and records every request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from hookstream_tools.devstack.process import free_port


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # answer this late (a timeout, when longer than the subscription's)


@dataclass
class Partner:
    """Answers from a script per ``path#event_id``, ``path#order_id/sequence`` or ``path``, then 200.
    An answer with a delay is recorded as ``late``: the sender may have given up on it."""

    script: dict[str, list[Answer | tuple[int, dict[str, str]]]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        entry: dict[str, Any] = {"path": request.path, "headers": dict(request.headers), "body": body}
        entry["at"] = time.monotonic()
        self.received.append(entry)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        answers = (
            self.script.get(f"{request.path}#{payload.get('event_id')}")
            or self.script.get(f"{request.path}#{payload.get('order_id')}/{payload.get('sequence')}")
            or self.script.get(request.path, [])
        )
        answer = answers.pop(0) if answers else Answer()
        if isinstance(answer, tuple):
            answer = Answer(*answer)
        entry["status"], entry["late"] = answer.status, answer.delay_s > 0
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, headers=answer.headers, text="ok" if answer.status < 300 else "nope")

    def at(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]


@asynccontextmanager
async def running_partner() -> AsyncIterator[Partner]:
    p = Partner()
    app = web.Application()
    app.router.add_post("/{name}", p.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    p.url = f"http://127.0.0.1:{port}"
    try:
        yield p
    finally:
        await runner.cleanup()

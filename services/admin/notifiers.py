"""Where alerts are told: a Slack-compatible webhook, PagerDuty Events v2 and e-mail.

Each takes one ``Notification`` and raises when it was not accepted; the dispatcher retries it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from hookstream.connectors.email import Mailer, Rendered
from hookstream.store.alerts import Notification


class Notifier(Protocol):
    name: str

    async def tell(self, n: Notification) -> None: ...


class SlackWebhook:
    """A Slack incoming webhook, or anything that takes its shape (``{"text": …}``)."""

    name = "slack"

    def __init__(self, url: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.url = url
        self.session = session

    async def tell(self, n: Notification) -> None:
        mark = ":rotating_light: FIRING" if n.firing else ":white_check_mark: RESOLVED"
        await _post(self.session(), self.url, {"text": f"{mark} [hookstream {n.rule}] {n.summary}"})


class PagerDuty:
    """PagerDuty Events API v2: trigger, and resolve under the same dedup key."""

    name = "pagerduty"

    def __init__(self, url: str, routing_key: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.url = url
        self.routing_key = routing_key
        self.session = session

    async def tell(self, n: Notification) -> None:
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": "trigger" if n.firing else "resolve",
            "dedup_key": f"hookstream:{n.rule}:{n.subject}",
        }
        if n.firing:
            event["payload"] = {"summary": n.summary[:1024], "source": "hookstream", "severity": "warning"}
        await _post(self.session(), self.url, event)


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as response:
        if response.status >= 300:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message=(await response.text())[:200]
            )


class Email:
    """An e-mail per change to every address, through the library's mailer (plain text and HTML)."""

    name = "email"

    def __init__(self, mailer: Mailer, sender: str, to: list[str]) -> None:
        self.mailer = mailer
        self.sender = sender
        self.to = to

    async def tell(self, n: Notification) -> None:
        state = "FIRING" if n.firing else "RESOLVED"
        rendered = Rendered(
            subject=f"[hookstream] {state}: {n.rule} on {n.subject}",
            text=f"{state}: {n.summary}\n\nThe admin dashboard's Alerts page has the history.\n",
            html=f"<p><strong>{state}</strong>: {html.escape(n.summary)}</p>"
            "<p>The admin dashboard's Alerts page has the history.</p>",
        )
        for address in self.to:
            # One key per notification and address: a retry after a partial failure is the same message.
            key = f"alert-notification:{n.id}:{address}"
            await self.mailer.send(sender=self.sender, to=address, rendered=rendered, idempotency_key=key)

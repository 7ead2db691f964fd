"""Built-in alerting, for users without Prometheus: the same kinds of rule as deploy/observability's,
evaluated every ``alert_interval_s`` from the overview's figures, told to a Slack-compatible webhook,
a PagerDuty Events v2 endpoint and e-mail when a condition starts holding and when it clears.

Only changes are told (the store hands a change to one admin replica), a firing within the cooldown
of the last one told is recorded but not told again (a flapping condition), and every change lands
in the history the dashboard shows.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from hookstream.connectors.email import Mailer, Rendered, SmtpEndpoint
from hookstream.errors import HookstreamError
from hookstream.lifecycle import Lifecycle, Periodic
from hookstream.store.alerts import AlertStore, Change
from hookstream_services.admin.config import AdminSettings

log = logging.getLogger("hookstream.admin.alerts")


@dataclass(frozen=True)
class Condition:
    rule: str
    subject: str
    firing: bool
    summary: str


def evaluate(overview: dict[str, Any], s: AdminSettings) -> list[Condition]:
    """Every rule on every subject it watches, holding or not (a cleared condition resolves its alert)."""
    found = []
    for q in overview["dead_letters"]:
        waiting = q["not_redriven"]
        found.append(
            Condition(
                "dead_letters",
                q["consumer"],
                waiting >= s.alert_dead_letters,
                f"{q['consumer']}: {waiting} dead letter(s) waiting in {q['topic']}",
            )
        )
    for c in overview["consumers"]:
        lag = c.get("lag") or 0
        found.append(Condition("lag", c["name"], lag >= s.alert_lag, f"{c['name']} is {lag} record(s) behind"))
    for e in overview["endpoints"]:
        name = f"{e['name']} ({e['subscription_id']})"
        reason = e.get("disabled_reason") or "no reason given"
        found.append(
            Condition("endpoint_disabled", e["subscription_id"], not e["enabled"], f"{name} is disabled: {reason}")
        )
        rate = e["success_rate"]
        failing = rate is not None and e["attempts"] >= s.alert_min_attempts and 1 - rate >= s.alert_failure_rate
        explained = e["last_failure"]["explanation"] if e.get("last_failure") else "no failure in the window"
        found.append(
            Condition(
                "delivery_failures",
                e["subscription_id"],
                failing,
                f"{name}: {e['attempts'] - e['succeeded']} of {e['attempts']} attempts failed; last: {explained}",
            )
        )
    return found


class Notifier(Protocol):
    name: str

    async def tell(self, change: Change) -> None: ...


class SlackWebhook:
    """A Slack incoming webhook, or anything that takes its shape (``{"text": …}``)."""

    name = "slack"

    def __init__(self, url: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.url = url
        self.session = session

    async def tell(self, change: Change) -> None:
        mark = ":rotating_light: FIRING" if change.firing else ":white_check_mark: RESOLVED"
        text = f"{mark} [hookstream {change.rule}] {change.summary}"
        await _post(self.session(), self.url, {"text": text})


class PagerDuty:
    """PagerDuty Events API v2: trigger, and resolve under the same dedup key."""

    name = "pagerduty"

    def __init__(self, url: str, routing_key: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.url = url
        self.routing_key = routing_key
        self.session = session

    async def tell(self, change: Change) -> None:
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": "trigger" if change.firing else "resolve",
            "dedup_key": f"hookstream:{change.rule}:{change.subject}",
        }
        if change.firing:
            event["payload"] = {"summary": change.summary, "source": "hookstream", "severity": "warning"}
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

    async def tell(self, change: Change) -> None:
        state = "FIRING" if change.firing else "RESOLVED"
        rendered = Rendered(
            subject=f"[hookstream] {state}: {change.rule} on {change.subject}",
            text=f"{state}: {change.summary}\n\nThe admin dashboard's Alerts page has the history.\n",
            html=f"<p><strong>{state}</strong>: {html.escape(change.summary)}</p>"
            "<p>The admin dashboard's Alerts page has the history.</p>",
        )
        key = f"alert:{change.rule}:{change.subject}:{state}:{time.time_ns()}"
        for address in self.to:
            await self.mailer.send(sender=self.sender, to=address, rendered=rendered, idempotency_key=key)


class Alerting(Lifecycle):
    """Evaluates the rules every ``alert_interval_s`` and tells each change to every notifier."""

    def __init__(
        self, store: AlertStore, overview: Callable[[], Awaitable[dict[str, Any]]], settings: AdminSettings
    ) -> None:
        self.store = store
        self.overview = overview
        self.settings = s = settings
        self._session: aiohttp.ClientSession | None = None
        self.notifiers: list[Notifier] = []
        if s.alert_slack_url:
            self.notifiers.append(SlackWebhook(s.alert_slack_url, self.session))
        if s.alert_pagerduty_url and s.alert_pagerduty_routing_key:
            self.notifiers.append(PagerDuty(s.alert_pagerduty_url, s.alert_pagerduty_routing_key, self.session))
        self.mailer: Mailer | None = None
        if s.alert_email_to:
            endpoint = SmtpEndpoint(
                s.alert_smtp_host,
                s.alert_smtp_port,
                s.alert_smtp_username,
                s.alert_smtp_password,
                s.alert_smtp_starttls,
                setting="HOOKSTREAM_ADMIN_ALERT_",
            )
            self.mailer = Mailer(endpoint)
            self.notifiers.append(Email(self.mailer, s.alert_email_from, list(s.alert_email_to)))
        self.periodic = Periodic(s.alert_interval_s, self.evaluate_once, "alert evaluation")

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self) -> None:
        if self.mailer is not None:
            await self.mailer.start()  # a missing SMTP host is a one-line error at startup
        await self.periodic.start()

    async def stop(self) -> None:
        await self.periodic.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.mailer is not None:
            await self.mailer.stop()

    async def evaluate_once(self) -> list[Change]:
        changes = []
        for c in evaluate(await self.overview(), self.settings):
            change = await self.store.transition(
                c.rule, c.subject, c.firing, c.summary, cooldown_s=self.settings.alert_cooldown_s
            )
            if change is None:
                continue
            told = []
            if change.notify:
                for notifier in self.notifiers:
                    try:
                        await notifier.tell(change)
                        told.append(notifier.name)
                    except (aiohttp.ClientError, TimeoutError, HookstreamError) as exc:
                        log.warning("alert not delivered", extra={"notifier": notifier.name, "error": str(exc)})
            await self.store.record(change, told)
            changes.append(change)
        return changes

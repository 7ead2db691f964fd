"""Built-in alerting, for users without Prometheus: the same kinds of rule as deploy/observability's
(``rules.py``), told to a Slack-compatible webhook, PagerDuty Events v2 and e-mail (``notifiers.py``)
when a condition starts holding and when it clears.

Rules over the overview and the intake are evaluated every ``alert_interval_s``; a delivery given up
fires from the alerts topic as it happens. Only changes are told (the store hands a change to one
admin replica), a firing within the cooldown of the last one told is recorded but not told again (a
flapping condition), and every change lands in the history the dashboard shows. Telling goes through
the store's outbox: a notifier that failed is tried again after each of ``alert_retry_delays``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from hookstream import redact
from hookstream.connectors.email import Mailer, SmtpEndpoint
from hookstream.consumer import Record
from hookstream.consumer.retry import parse_delay
from hookstream.errors import HookstreamError
from hookstream.lifecycle import Lifecycle, Periodic
from hookstream.store.alerts import AlertStore, Change, Notification
from hookstream.store.deliveries import DeliveryLog
from hookstream.store.volume import Volume
from hookstream_services.admin import rules
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.notifiers import Email, Notifier, PagerDuty, SlackWebhook

log = logging.getLogger("hookstream.admin.alerts")

LEASE_S = 60  # a claimed notification comes back after this, should its teller die
FEED_MAX_AGE_S = 24 * 3600  # a given-up delivery older than this is not told (alerting switched on over a backlog)


class Alerting(Lifecycle):
    def __init__(
        self,
        store: AlertStore,
        volume: Volume,
        deliveries: DeliveryLog,
        overview: Callable[[], Awaitable[dict[str, Any]]],
        settings: AdminSettings,
    ) -> None:
        self.store = store
        self.volume = volume
        self.deliveries = deliveries
        self.overview = overview
        self.settings = s = settings
        self.retry_delays_s = [parse_delay(label) / 1000 for label in s.alert_retry_delays]
        self._session: aiohttp.ClientSession | None = None
        self.mailer: Mailer | None = None
        self.notifiers: dict[str, Notifier] = {}
        if s.alert_slack_url:
            self._add(SlackWebhook(s.alert_slack_url, self.session))
        if s.alert_pagerduty_url and s.alert_pagerduty_routing_key:
            self._add(PagerDuty(s.alert_pagerduty_url, s.alert_pagerduty_routing_key, self.session))
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
            self._add(Email(self.mailer, s.alert_email_from, list(s.alert_email_to)))
        self.evaluation = Periodic(s.alert_interval_s, self.evaluate_once, "alert evaluation")
        self.dispatch = Periodic(s.alert_dispatch_interval_s, self.tell_due, "alert notifications")

    def _add(self, notifier: Notifier) -> None:
        self.notifiers[notifier.name] = notifier

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self) -> None:
        if self.mailer is not None:
            await self.mailer.start()  # a missing SMTP host is a one-line error at startup
        await self.dispatch.start()
        await self.evaluation.start()

    async def stop(self) -> None:
        await self.evaluation.stop()
        await self.dispatch.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.mailer is not None:
            await self.mailer.stop()

    async def evaluate_once(self) -> list[Change]:
        s = self.settings
        conditions = rules.from_overview(await self.overview(), s)
        await self.volume.count_settled()
        conditions += rules.volume_drop(await self.volume.against_yesterday(), s)
        given_up = [row["subject"] for row in await self.store.firing(rules.DEAD_LETTERED)]
        # Asked together: the log's group commit reads them in one statement.
        statuses = await asyncio.gather(*(self.deliveries.status(d) for d in given_up))
        conditions += [c for d, st in zip(given_up, statuses, strict=True) if (c := rules.delivery_settled(d, st))]
        return [change for c in conditions if (change := await self.apply(c)) is not None]

    async def on_alert_record(self, record: Record) -> None:
        """The alerts topic's handler: a delivery given up fires its own alert (once, however often read)."""
        condition = rules.from_alert_record(record.value, record.timestamp_ms, max_age_s=FEED_MAX_AGE_S)
        if condition is not None:
            await self.apply(condition)

    async def apply(self, c: rules.Condition) -> Change | None:
        change = await self.store.change(
            c.rule,
            c.subject,
            c.firing,
            c.summary,
            cooldown_s=self.settings.alert_cooldown_s,
            notifiers=list(self.notifiers),
        )
        if change is not None and change.notify:
            self.dispatch.wake()
        return change

    async def tell_due(self) -> int:
        """Tell every notification that is due; a failure is tried again later or, its retries spent,
        given up. Returns how many were told."""
        told = 0
        while batch := await self.store.claim(lease_s=LEASE_S):
            for n in batch:
                told += await self._tell(n)
        return told

    async def _tell(self, n: Notification) -> bool:
        notifier = self.notifiers.get(n.notifier)
        try:
            if notifier is None:
                raise LookupError(f"notifier {n.notifier!r} is no longer configured")
            await notifier.tell(n)
        except (aiohttp.ClientError, TimeoutError, HookstreamError, LookupError, OSError) as exc:
            retries_left = notifier is not None and n.attempts <= len(self.retry_delays_s)
            retry_in_s = self.retry_delays_s[n.attempts - 1] if retries_left else None
            # aiohttp's errors quote the URL, and a Slack webhook URL is its own secret.
            error = redact.urls_in(f"{type(exc).__name__}: {exc}", keep_path=False)
            log.warning(
                "alert not delivered",
                extra={"notifier": n.notifier, "attempt": n.attempts, "retry_in_s": retry_in_s, "error": error},
            )
            await self.store.failed(n, error, retry_in_s=retry_in_s)
            return False
        await self.store.sent(n)
        return True

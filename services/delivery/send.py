"""Sending one delivery: sign with Standard Webhooks, respect the endpoint's rate limit and circuit
breaker, record every attempt, and turn the answer into the runtime's policy: retry (with the
partner's Retry-After), dead-letter, or done.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hookstream.avro import AvroSerde
from hookstream.consumer import Record
from hookstream.consumer.dlq import REDRIVEN_FROM
from hookstream.errors import PermanentError, RetriableError
from hookstream.http.outbound.payload import signed_request
from hookstream.http.outbound.sender import Sender, Verdict
from hookstream.kafka import Producer
from hookstream.ratelimit import TokenBucket
from hookstream.sensors import Sensor
from hookstream.store.circuits import CircuitLog
from hookstream.store.deliveries import (
    ATTEMPTED,
    DELIVERY,
    FINAL,
    SUBSCRIPTION,
    DeliveryLog,
    DeliveryStatus,
    webhook_id,
)
from hookstream.store.subscriptions import Subscription, UnknownSubscription
from hookstream_schemas import topics
from hookstream_services.delivery.breaker import Breaker
from hookstream_services.delivery.cache import SubscriptionCache

log = logging.getLogger("hookstream.delivery")

HEALTH_TRUSTED_S = 60.0


class Send:
    def __init__(
        self,
        canonical: AvroSerde,
        cache: SubscriptionCache,
        log_: DeliveryLog,
        sender: Sender,
        producer: Producer,
        *,
        max_attempts: int,
        auto_disable_after: timedelta = timedelta(days=5),
        breaker: Callable[[], Breaker] = Breaker,
        circuits: CircuitLog | None = None,
        instance: str = "",
        alerts_topic: str = topics.ALERTS.name,
        sensors: Sensor | None = None,
    ) -> None:
        self.canonical = canonical
        self.cache = cache
        self.log = log_
        self.sender = sender
        self.sensors = sensors or Sensor()
        self.producer = producer
        self.max_attempts = max_attempts
        self.alerts_topic = alerts_topic
        self.auto_disable_after = auto_disable_after
        self.new_breaker = breaker
        self.breakers: dict[str, Breaker] = {}
        self.circuits = circuits  # None: nobody is told (unit tests)
        self.instance = instance
        self.buckets: dict[str, TokenBucket] = {}
        self._known_healthy: dict[str, float] = {}  # endpoint → until when its failing_since is known clear
        self._failing_since: dict[str, tuple[datetime | None, float]] = {}  # endpoint → (since, read at)

    async def __call__(self, record: Record) -> None:
        sub_id, delivery = record.header(SUBSCRIPTION), record.header(DELIVERY)
        if not sub_id or not delivery:
            raise PermanentError("a deliveries.v1 record without subscription and delivery ids")
        handed_over = record.header(ATTEMPTED)
        if handed_over is not None and record.attempt == 1 and record.header(REDRIVEN_FROM) is None:
            _continue_after_first_attempt(handed_over)  # raises: the retry is scheduled, nothing sent now
        status = await self.log.status(delivery)
        if status in FINAL and not (status == DeliveryStatus.FAILED and record.header(REDRIVEN_FROM)):
            return  # a redelivery of something already settled (a redriven dead letter is sent again)
        sub = await self.cache.get(sub_id)
        if not sub.enabled:
            await self.log.mark(delivery, DeliveryStatus.SKIPPED, f"subscription disabled: {sub.disabled_reason}")
            return
        breaker = self._breaker(sub.id)
        if wait_s := breaker.wait_s():
            await self.log.mark(delivery, DeliveryStatus.RETRYING, "circuit open: the endpoint is failing")
            raise RetriableError(f"circuit open for {sub.url}", retry_after_ms=int(wait_s * 1000))
        if sub.rate_limit_per_s:
            bucket = self.buckets.get(sub.id)
            if bucket is None or bucket.rate != sub.rate_limit_per_s:
                bucket = self.buckets[sub.id] = TokenBucket(sub.rate_limit_per_s, max(1, int(sub.rate_limit_per_s)))
            await bucket.acquire()
        event = self.canonical.decode(record.value or b"", record.headers)
        await self._send(sub, delivery, event, breaker, last=record.attempt >= self.max_attempts)

    def _breaker(self, sub_id: str) -> Breaker:
        breaker = self.breakers.get(sub_id)
        if breaker is None:
            breaker = self.breakers[sub_id] = self.new_breaker()
        return breaker

    def sends_now(self, sub: Subscription) -> bool:
        """Whether fan-out may make the first attempt itself: nothing would hold it here (no rate
        limit to wait for, circuit closed)."""
        if not sub.enabled or sub.rate_limit_per_s:
            return False
        breaker = self.breakers.get(sub.id)
        return breaker is None or not breaker.wait_s()

    async def first_attempt(self, sub: Subscription, delivery: str, event: dict[str, Any]) -> bytes | None:
        """Fan-out's own first attempt. None when it settled the delivery (delivered, or gone); else
        the ``ATTEMPTED`` header value for handing the delivery over to the sending side."""
        breaker = self._breaker(sub.id)
        try:
            await self._send(sub, delivery, event, breaker, last=self.max_attempts <= 1)
        except PermanentError as exc:
            return f"rejected:{exc}".encode()
        except RetriableError as exc:
            return b"retry" if exc.retry_after_ms is None else f"retry:{exc.retry_after_ms}".encode()
        return None

    async def _send(
        self, sub: Subscription, delivery: str, event: dict[str, Any], breaker: Breaker, *, last: bool
    ) -> None:
        """One signed POST; returns when settled, raises the runtime's policy otherwise."""
        body, headers = signed_request(sub, event, webhook_id(sub.id, event["event_id"]))
        attempt = await self.sender.post(sub.url, body, headers, timeout_ms=sub.timeout_ms)
        self.sensors.on_http_attempt(sub.id, attempt.verdict.value, attempt.status_code, attempt.latency_ms / 1000)
        if attempt.verdict is Verdict.DELIVERED:
            await self._record(sub, breaker, True)
            await self.log.record(delivery, attempt, DeliveryStatus.DELIVERED)
            await self._healthy(sub)
            return
        if attempt.verdict is Verdict.GONE:
            await self.log.record(delivery, attempt, DeliveryStatus.FAILED)
            await self._disable(sub, f"the endpoint answered 410 Gone at {datetime.now(UTC).isoformat()}")
            return
        if attempt.verdict is Verdict.REJECTED:
            await self.log.record(delivery, attempt, DeliveryStatus.FAILED)
            raise PermanentError(f"{sub.url} rejected the delivery: {attempt.error}")
        await self._record(sub, breaker, False)
        await self.log.record(delivery, attempt, DeliveryStatus.FAILED if last else DeliveryStatus.RETRYING)
        await self._failing(sub)
        raise RetriableError(f"{sub.url}: {attempt.error}", retry_after_ms=attempt.retry_after_ms)

    async def _record(self, sub: Subscription, breaker: Breaker, ok: bool) -> None:
        """Feed the breaker; say so in the store when its circuit opens, stays open after a failed probe, or closes."""
        was_open = breaker.is_open
        breaker.record(ok)
        if breaker.is_open and not ok:  # it opened, or a probe failed (a circuit opens only on a failure)
            self.sensors.on_circuit(sub.id, True)
            if self.circuits is not None:
                # Three cooldowns: a live instance probes (and so writes) at least once in that time.
                await self.circuits.opened(sub.id, self.instance, trusted_for_s=3 * breaker.cooldown_s)
        elif was_open and not breaker.is_open:
            self.sensors.on_circuit(sub.id, False)
            if self.circuits is not None:
                await self.circuits.closed(sub.id, self.instance)

    async def _healthy(self, sub: Subscription) -> None:
        # Cleared once, then trusted for a minute: not one write per delivery. Another instance may
        # mark the endpoint failing meanwhile; our next clear after the minute undoes that.
        if self._known_healthy.get(sub.id, 0.0) > time.monotonic():
            return
        self._failing_since.pop(sub.id, None)
        await self.cache.store.clear_failing(sub.id)
        self._known_healthy[sub.id] = time.monotonic() + HEALTH_TRUSTED_S

    async def _failing(self, sub: Subscription) -> None:
        self._known_healthy.pop(sub.id, None)
        since, read_at = self._failing_since.get(sub.id, (None, 0.0))
        # Written once per failure streak and re-read each minute, or to confirm before disabling
        # (another instance may have seen the endpoint succeed meanwhile): not one write per failure.
        if since is None or self._overdue(since) or time.monotonic() - read_at > HEALTH_TRUSTED_S:
            since = await self.cache.store.mark_failing(sub.id)
            self._failing_since[sub.id] = (since, time.monotonic())
        if since is not None and self._overdue(since):
            await self._disable(sub, f"failing continuously since {since.isoformat()}")

    def _overdue(self, failing_since: datetime) -> bool:
        return datetime.now(UTC) - failing_since >= self.auto_disable_after

    async def _disable(self, sub: Subscription, reason: str) -> None:
        first = await self.cache.store.disable_if_enabled(sub.id, reason)
        self.cache.put(await self.cache.store.get(sub.id))
        if not first:
            return  # a concurrent delivery to the same endpoint disabled it and raised the alert
        log.warning("endpoint disabled", extra={"subscription_id": sub.id, "url": sub.url, "reason": reason})
        self.sensors.on_endpoint_disabled(sub.id, reason)
        await self._alert("endpoint.disabled", sub.id, subscription_id=sub.id, url=sub.url, reason=reason)

    async def dead_lettered(self, record: Record, exc: BaseException) -> None:
        """The runtime gave the delivery up (its retries spent, or rejected): the log says failed, and an
        alert names the endpoint, event, order and reason. Run again for a redelivered record, the alert
        is the same (its consumer tells a delivery once)."""
        delivery = record.header(DELIVERY)
        row = await self.log.get(delivery) if delivery else None
        if delivery is None or row is None:
            return  # not a delivery the log knows (a malformed record): its dead letter says enough
        reason = str(exc) or type(exc).__name__
        if row["status"] not in FINAL:  # e.g. its last try found the circuit open
            await self.log.mark(delivery, DeliveryStatus.FAILED, reason)
        try:
            sub = await self.cache.get(row["subscription_id"])
        except UnknownSubscription:
            return  # deleted meanwhile, and its deliveries with it
        await self._alert(
            "delivery.dead_lettered",
            delivery,
            delivery_id=delivery,
            subscription_id=sub.id,
            endpoint=sub.name,
            url=sub.url,
            event_id=row["event_id"],
            event_type=row["event_type"],
            order_id=row["order_id"],
            attempts=row["attempts"],
            reason=reason,
        )

    async def _alert(self, kind: str, key: str, **fields: object) -> None:
        alert = {"type": kind, **fields, "at": datetime.now(UTC).isoformat()}
        await self.producer.send(self.alerts_topic, json.dumps(alert).encode(), key=key)


def _continue_after_first_attempt(handed_over: str) -> None:
    """Fan-out made the first attempt and it failed: dead-letter a rejection, schedule a retry."""
    verdict, _, detail = handed_over.partition(":")
    if verdict == "rejected":
        raise PermanentError(detail or "the endpoint rejected the delivery")
    raise RetriableError(
        "the first attempt (made at fan-out) failed", retry_after_ms=int(detail) if detail.isdigit() else None
    )

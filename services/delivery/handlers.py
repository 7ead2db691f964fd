"""Fan-out (one canonical event → one delivery per matching subscription) and sending.

Fan-out writes the deliveries and publishes each to ``deliveries.v1`` keyed by
``<subscription>:<order>``, so the consumer runtime gives FIFO per (endpoint, order), concurrency
across keys, retry tiers and parking. Sending signs with Standard Webhooks, respects the
endpoint's rate limit and circuit breaker, records every attempt, and turns the answer into
the runtime's policy: retry (with the partner's Retry-After), dead-letter, or done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hookstream.avro import AvroSerde
from hookstream.consumer import Record
from hookstream.db import Database
from hookstream.errors import PermanentError, RetriableError
from hookstream.kafka import Producer
from hookstream.outbound.payload import render
from hookstream.ratelimit import TokenBucket
from hookstream.signatures import standard_headers
from hookstream.subscriptions import Subscription, SubscriptionStore
from hookstream_services.delivery.deliveries import FINAL, DeliveryLog, delivery_id, webhook_id
from hookstream_services.delivery.sender import Sender, Verdict

log = logging.getLogger("hookstream.delivery")

DELIVERIES_TOPIC = "deliveries.v1"
ALERTS_TOPIC = "hookstream.alerts"
SUBSCRIPTION = "hookstream-subscription-id"
DELIVERY = "hookstream-delivery-id"
USER_AGENT = "hookstream/0.1 (+https://github.com/hookstream)"
HEALTH_TRUSTED_S = 60.0


class SubscriptionCache:
    """Subscriptions read at most every ``refresh_s``; a change made here is seen at once.

    One read serves everyone: a thousand deliveries finding the cache stale at once share it."""

    def __init__(self, store: SubscriptionStore, refresh_s: float = 2.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._by_id: dict[str, Subscription] = {}
        self._loaded_at = 0.0
        self._loading: asyncio.Future[None] | None = None

    async def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at <= self.refresh_s:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        try:
            self._by_id = {s.id: s for s in await self.store.list()}
            self._loaded_at = time.monotonic()
        finally:
            self._loading = None

    async def all(self) -> list[Subscription]:
        await self._refresh()
        return list(self._by_id.values())

    async def get(self, subscription_id: str) -> Subscription:
        await self._refresh()
        if subscription_id not in self._by_id:
            self._by_id[subscription_id] = await self.store.get(subscription_id)
        return self._by_id[subscription_id]

    def put(self, subscription: Subscription) -> None:
        self._by_id[subscription.id] = subscription


class Fanout:
    def __init__(
        self,
        canonical: AvroSerde,
        cache: SubscriptionCache,
        log_: DeliveryLog,
        producer: Producer,
        *,
        topic: str = DELIVERIES_TOPIC,
    ) -> None:
        self.canonical = canonical
        self.cache = cache
        self.log = log_
        self.producer = producer
        self.topic = topic

    async def __call__(self, record: Record) -> None:
        event = self.canonical.decode(record.value or b"", record.headers)
        wanted = [s for s in await self.cache.all() if s.wants(event["type"])]
        if not wanted:
            return
        kept = [(k, v) for k, v in record.headers if k not in (SUBSCRIPTION, DELIVERY)]
        await self.log.create(
            [(s.id, event["event_id"], event["order_id"], event["type"]) for s in wanted], record.value or b"", kept
        )
        # All at once: an event with a thousand subscribers waits for one round of acknowledgements.
        acks = [
            self.producer.send_nowait(
                self.topic,
                record.value,
                key=f"{sub.id}:{event['order_id']}",
                headers=[
                    *kept,
                    (SUBSCRIPTION, sub.id.encode()),
                    (DELIVERY, delivery_id(sub.id, event["event_id"]).encode()),
                ],
            )
            for sub in wanted
        ]
        await asyncio.gather(*acks)


class Breaker:
    """Per endpoint: opens when at least ``failure_ratio`` of the last ``window`` calls failed (after
    ``min_calls``); after ``cooldown_s`` one probe goes through; its success closes it."""

    def __init__(
        self,
        *,
        window: int = 20,
        min_calls: int = 5,
        failure_ratio: float = 0.5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.results: deque[bool] = deque(maxlen=window)
        self.min_calls = min_calls
        self.failure_ratio = failure_ratio
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.opened_at: float | None = None
        self.probing = False

    def wait_s(self) -> float:
        """0: go ahead. Else how long until the next probe may go."""
        if self.opened_at is None:
            return 0.0
        remaining = self.cooldown_s - (self.clock() - self.opened_at)
        if remaining <= 0 and not self.probing:
            self.probing = True
            return 0.0
        return max(remaining, 1.0)

    def record(self, ok: bool) -> None:
        if self.probing:
            self.probing = False
            self.opened_at = None if ok else self.clock()
            self.results.clear()
            return
        self.results.append(ok)
        failures = self.results.count(False)
        if len(self.results) >= self.min_calls and failures / len(self.results) >= self.failure_ratio:
            self.opened_at = self.clock()


class Send:
    def __init__(
        self,
        canonical: AvroSerde,
        cache: SubscriptionCache,
        log_: DeliveryLog,
        sender: Sender,
        db: Database,
        producer: Producer,
        *,
        max_attempts: int,
        auto_disable_after: timedelta = timedelta(days=5),
        breaker: Callable[[], Breaker] = Breaker,
    ) -> None:
        self.canonical = canonical
        self.cache = cache
        self.log = log_
        self.sender = sender
        self.db = db
        self.producer = producer
        self.max_attempts = max_attempts
        self.auto_disable_after = auto_disable_after
        self.new_breaker = breaker
        self.breakers: dict[str, Breaker] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self._known_healthy: dict[str, float] = {}  # endpoint → until when its failing_since is known clear
        self._failing_since: dict[str, tuple[datetime | None, float]] = {}  # endpoint → (since, read at)

    async def __call__(self, record: Record) -> None:
        sub_id, delivery = record.header(SUBSCRIPTION), record.header(DELIVERY)
        if not sub_id or not delivery:
            raise PermanentError("a deliveries.v1 record without subscription and delivery ids")
        if await self.log.status(delivery) in FINAL:
            return  # a redelivery of something already settled
        sub = await self.cache.get(sub_id)
        if not sub.enabled:
            await self.log.mark(delivery, "skipped", f"subscription disabled: {sub.disabled_reason}")
            return
        breaker = self.breakers.setdefault(sub.id, self.new_breaker())
        if wait_s := breaker.wait_s():
            await self.log.mark(delivery, "retrying", "circuit open: the endpoint is failing")
            raise RetriableError(f"circuit open for {sub.url}", retry_after_ms=int(wait_s * 1000))
        if sub.rate_limit_per_s:
            bucket = self.buckets.get(sub.id)
            if bucket is None or bucket.rate != sub.rate_limit_per_s:
                bucket = self.buckets[sub.id] = TokenBucket(sub.rate_limit_per_s, max(1, int(sub.rate_limit_per_s)))
            await bucket.acquire()

        event = self.canonical.decode(record.value or b"", record.headers)
        body, content_type = render(event, sub.content_type)
        msg_id = webhook_id(sub.id, event["event_id"])
        headers = {
            **sub.headers,
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            **standard_headers(sub.signing_secrets(), msg_id, int(time.time()), body),
        }
        attempt = await self.sender.post(sub.url, body, headers, timeout_ms=sub.timeout_ms)
        last = record.attempt >= self.max_attempts
        if attempt.verdict is Verdict.DELIVERED:
            breaker.record(True)
            await self.log.record(delivery, attempt, "delivered")
            await self._healthy(sub)
            return
        if attempt.verdict is Verdict.GONE:
            await self.log.record(delivery, attempt, "failed")
            await self._disable(sub, f"the endpoint answered 410 Gone at {datetime.now(UTC).isoformat()}")
            return
        if attempt.verdict is Verdict.REJECTED:
            await self.log.record(delivery, attempt, "failed")
            raise PermanentError(f"{sub.url} rejected the delivery: {attempt.error}")
        breaker.record(False)
        await self.log.record(delivery, attempt, "failed" if last else "retrying")
        await self._failing(sub)
        raise RetriableError(f"{sub.url}: {attempt.error}", retry_after_ms=attempt.retry_after_ms)

    async def _healthy(self, sub: Subscription) -> None:
        # Cleared once, then trusted for a minute: not one write per delivery. Another instance may
        # mark the endpoint failing meanwhile; our next clear after the minute undoes that.
        if self._known_healthy.get(sub.id, 0.0) > time.monotonic():
            return
        self._failing_since.pop(sub.id, None)
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE subscriptions SET failing_since = NULL WHERE id = %s AND failing_since IS NOT NULL", (sub.id,)
            )
        self._known_healthy[sub.id] = time.monotonic() + HEALTH_TRUSTED_S

    async def _failing(self, sub: Subscription) -> None:
        self._known_healthy.pop(sub.id, None)
        since, read_at = self._failing_since.get(sub.id, (None, 0.0))
        # Written once per failure streak and re-read each minute, or to confirm before disabling
        # (another instance may have seen the endpoint succeed meanwhile): not one write per failure.
        if since is None or self._overdue(since) or time.monotonic() - read_at > HEALTH_TRUSTED_S:
            since = await self._mark_failing(sub)
            self._failing_since[sub.id] = (since, time.monotonic())
        if since is not None and self._overdue(since):
            await self._disable(sub, f"failing continuously since {since.isoformat()}")

    def _overdue(self, failing_since: datetime) -> bool:
        return datetime.now(UTC) - failing_since >= self.auto_disable_after

    async def _mark_failing(self, sub: Subscription) -> datetime | None:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """UPDATE subscriptions SET failing_since = coalesce(failing_since, now())
                   WHERE id = %s RETURNING failing_since""",
                (sub.id,),
            )
            row = await cur.fetchone()
        since = row["failing_since"] if row else None
        return since if isinstance(since, datetime) else None

    async def _disable(self, sub: Subscription, reason: str) -> None:
        first = await self.cache.store.disable_if_enabled(sub.id, reason)
        self.cache.put(await self.cache.store.get(sub.id))
        if not first:
            return  # a concurrent delivery to the same endpoint disabled it and raised the alert
        log.warning("endpoint disabled", extra={"subscription_id": sub.id, "url": sub.url, "reason": reason})
        alert = {
            "type": "endpoint.disabled",
            "subscription_id": sub.id,
            "url": sub.url,
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
        }
        await self.producer.send(ALERTS_TOPIC, json.dumps(alert).encode(), key=sub.id)

"""The admin API's routes (``/api/v1``): subscriptions, deliveries, orders, the audit log.

Handlers parse and check the request, call the store layer and answer JSON; every write goes into
the audit log with the token that made it. Errors are ``{"error", "detail"}`` with a precise status:
401/403/404 from ``auth``, 422 naming the field, 503 with Retry-After when Postgres or Kafka is away.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import psycopg
from hookstream.consumer.dlq import DeadLetter, list_dead_letters, redrive, select
from hookstream.db import Database
from hookstream.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    DeliveryFailed,
    ProducerQueueFull,
)
from hookstream.http.outbound.payload import signed_request
from hookstream.http.outbound.sender import Sender, Verdict, explain
from hookstream.kafka import Producer
from hookstream.kafka.groups import GroupActive, GroupAdmin, UnknownTopic
from hookstream.registry import ConsumerGroup
from hookstream.store import audit
from hookstream.store.deliveries import DeliveryLog, DeliveryStatus, resend
from hookstream.store.invoices import InvoiceStore
from hookstream.store.orders import OrderRefs, OrderStore
from hookstream.store.risk import RiskStore
from hookstream.store.subscriptions import (
    MAX_RATE_PER_S,
    MIN_RATE_PER_S,
    InvalidSubscription,
    Subscription,
    SubscriptionStore,
    UnknownSubscription,
)
from hookstream.store.tokens import Token, TokenStore
from hookstream_services.admin.auth import authenticate, own, require
from hookstream_services.admin.errors import ApiError
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("hookstream.admin")
Handler = Callable[[Request, Token], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] = Field(min_length=1)
    content_type: Literal["json", "xml"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(10_000, ge=100, le=60_000)
    rate_limit_per_s: float | None = Field(None, ge=MIN_RATE_PER_S, le=MAX_RATE_PER_S)


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1)
    content_type: Literal["json", "xml"] | None = None
    headers: dict[str, str] | None = None
    timeout_ms: int | None = Field(None, ge=100, le=60_000)
    rate_limit_per_s: float | None = Field(None, ge=MIN_RATE_PER_S, le=MAX_RATE_PER_S)


class Disable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("disabled by an operator", min_length=1, max_length=500)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_datetime: datetime
    dry_run: bool = False


class Recover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime
    include_skipped: bool = False


class Redrive(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positions: list[str] = Field(default_factory=list, description="partition:offset of each dead letter")
    event_ids: list[str] = Field(default_factory=list)
    all: bool = False
    include_redriven: bool = False


class Api:
    def __init__(
        self,
        db: Database,
        producer: Producer,
        *,
        deliveries_topic: str,
        groups: GroupAdmin,
        consumers: Callable[[], Mapping[str, ConsumerGroup]],
        sender: Sender,
    ) -> None:
        self.db = db
        self.producer = producer
        self.deliveries_topic = deliveries_topic
        self.groups = groups
        self._find_consumers = consumers
        self._consumers: Mapping[str, ConsumerGroup] | None = None
        self.sender = sender
        self.tokens = TokenStore(db)
        self.subscriptions = SubscriptionStore(db)
        self.deliveries = DeliveryLog(db)
        self.orders = OrderStore(db)

    def routes(self) -> list[Route]:
        r = self._route
        return [
            r("/api/v1/whoami", self.whoami),
            r("/api/v1/subscriptions", self.list_subscriptions),
            r("/api/v1/subscriptions", self.create_subscription, "POST"),
            r("/api/v1/subscriptions/{id}", self.get_subscription),
            r("/api/v1/subscriptions/{id}", self.update_subscription, "PATCH"),
            r("/api/v1/subscriptions/{id}/disable", self.disable_subscription, "POST"),
            r("/api/v1/subscriptions/{id}/enable", self.enable_subscription, "POST"),
            r("/api/v1/subscriptions/{id}/rotate-secret", self.rotate_secret, "POST"),
            r("/api/v1/subscriptions/{id}/recover", self.recover, "POST"),
            r("/api/v1/subscriptions/{id}/test", self.send_test, "POST"),
            r("/api/v1/deliveries", self.list_deliveries),
            r("/api/v1/deliveries/{id}", self.get_delivery),
            r("/api/v1/deliveries/{id}/retry", self.retry_delivery, "POST"),
            r("/api/v1/orders/{id}", self.get_order),
            r("/api/v1/audit", self.list_audit),
            r("/api/v1/consumers", self.list_consumers),
            r("/api/v1/dead-letters", self.list_queues),
            r("/api/v1/dead-letters/{consumer}", self.list_dead_letters),
            r("/api/v1/dead-letters/{consumer}/redrive", self.redrive, "POST"),
            r("/api/v1/consumers/{name}/replay", self.replay, "POST"),
        ]

    def _route(self, path: str, handler: Handler, method: str = "GET") -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                token = await authenticate(request, self.tokens)  # no token: 401 before anything else
                for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
                    if _unstorable(value) is not None:
                        raise ApiError(422, "invalid", f"{name}: a NUL or an unpaired surrogate is not a valid value")
                return await handler(request, token)
            except ApiError as exc:
                response: Response = exc.response()
                return response
            except psycopg.DataError as exc:  # a value the checks above let through and the database refuses
                refused: Response = ApiError(422, "invalid", f"a value the database cannot take: {exc}").response()
                return refused
            except (psycopg.OperationalError, PoolTimeout, DatabaseUnavailable) as exc:
                log.warning("database unavailable", extra={"path": path, "error": str(exc)})
                return _unavailable("PostgreSQL")
            except (BrokerUnavailable, DeliveryFailed, ProducerQueueFull) as exc:
                log.warning("broker unavailable", extra={"path": path, "error": str(exc)})
                return _unavailable("Kafka")
            except Exception:
                # A bug: logged with its traceback here, answered without one.
                log.exception("admin request failed", extra={"path": path, "method": method})
                return JSONResponse(
                    {"error": "internal", "detail": "the admin hit an unexpected error; its log has the details"}, 500
                )

        return Route(path, endpoint, methods=[method], name=f"{method} {path}")

    # subscriptions

    async def whoami(self, request: Request, token: Token) -> Response:
        return JSONResponse(
            {"id": token.id, "name": token.name, "scope": token.scope, "subscription_id": token.subscription_id}
        )

    async def list_subscriptions(self, request: Request, token: Token) -> Response:
        require(token, "read", partner_may=True)
        found = await self.subscriptions.list()
        if token.scope == "partner":
            found = [s for s in found if s.id == token.subscription_id]
        return JSONResponse({"subscriptions": [_subscription(s) for s in found]})

    async def get_subscription(self, request: Request, token: Token) -> Response:
        require(token, "read", partner_may=True)
        return JSONResponse(_subscription(await self._subscription(request, token)))

    async def create_subscription(self, request: Request, token: Token) -> Response:
        require(token, "write")
        body = await _body(request, NewSubscription)
        try:
            created = await self.subscriptions.add(**body.model_dump())
        except InvalidSubscription as exc:
            raise ApiError(422, "invalid", str(exc)) from exc
        await self._audit(token, "subscription.create", created.id, None, _subscription(created))
        secret = next(s.value for s in created.secrets)
        return JSONResponse({**_subscription(created), "secret": secret}, 201)  # shown once

    async def update_subscription(self, request: Request, token: Token) -> Response:
        require(token, "write")
        before = await self._subscription(request, token)
        changes = (await _body(request, SubscriptionChange)).model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in changes.items() if v is None and k != "rate_limit_per_s")
        if nulls:
            raise ApiError(422, "invalid", f"{nulls[0]}: leave it out to keep it; null is only for rate_limit_per_s")
        try:
            after = await self.subscriptions.update(before.id, **changes)
        except InvalidSubscription as exc:
            raise ApiError(422, "invalid", str(exc)) from exc
        await self._audit(token, "subscription.update", before.id, _subscription(before), _subscription(after))
        return JSONResponse(_subscription(after))

    async def disable_subscription(self, request: Request, token: Token) -> Response:
        require(token, "write")
        before = await self._subscription(request, token)
        reason = (await _body(request, Disable, empty_ok=True)).reason
        after = await self.subscriptions.set_enabled(before.id, False, reason)
        await self._audit(token, "subscription.disable", before.id, _subscription(before), _subscription(after))
        return JSONResponse(_subscription(after))

    async def enable_subscription(self, request: Request, token: Token) -> Response:
        require(token, "write")
        before = await self._subscription(request, token)
        after = await self.subscriptions.set_enabled(before.id, True)
        await self._audit(token, "subscription.enable", before.id, _subscription(before), _subscription(after))
        return JSONResponse(_subscription(after))

    async def rotate_secret(self, request: Request, token: Token) -> Response:
        require(token, "write", partner_may=True)
        current = await self._subscription(request, token)
        secret = await self.subscriptions.rotate_secret(current.id)
        await self._audit(token, "subscription.rotate_secret", current.id, None, {"secrets": "rotated"})
        return JSONResponse({"subscription_id": current.id, "secret": secret, "old_secrets_valid_for_s": 86_400})

    async def recover(self, request: Request, token: Token) -> Response:
        require(token, "write", partner_may=True)
        current = await self._subscription(request, token)
        body = await _body(request, Recover)
        _aware(body.since, "since")
        count = await resend(
            self.db,
            self.producer,
            subscription_id=current.id,
            since=body.since,
            include_skipped=body.include_skipped,
            topic=self.deliveries_topic,
        )
        after = {"queued": count, "since": body.since.isoformat(), "include_skipped": body.include_skipped}
        await self._audit(token, "subscription.recover", current.id, None, after)
        return JSONResponse({"subscription_id": current.id, **after}, 202)

    async def send_test(self, request: Request, token: Token) -> Response:
        """A signed ``webhook.test`` event to the endpoint now, and what came back, explained."""
        require(token, "write", partner_may=True)
        sub = await self._subscription(request, token)
        event = {
            "event_id": f"test_{secrets.token_hex(8)}",
            "type": "webhook.test",
            "subscription_id": sub.id,
            "occurred_at": datetime.now(UTC),
            "message": "a test event from hookstream: no order behind it",
        }
        body, headers = signed_request(sub, event, f"msg_{event['event_id']}")
        attempt = await self.sender.post(sub.url, body, headers, timeout_ms=sub.timeout_ms)
        answer = {
            "delivered": attempt.verdict is Verdict.DELIVERED,
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "response_excerpt": attempt.excerpt,
            "error": attempt.error,
            "explanation": explain(attempt),
        }
        await self._audit(token, "subscription.test", sub.id, None, {"delivered": answer["delivered"]})
        return JSONResponse(answer)

    # deliveries

    async def list_deliveries(self, request: Request, token: Token) -> Response:
        require(token, "read", partner_may=True)
        q = request.query_params
        _only(q.keys(), {"subscription_id", "order_id", "status", "since", "until", "limit"})
        subscription_id = q.get("subscription_id")
        if token.scope == "partner":
            own(token, subscription_id or token.subscription_id, "subscription")
            subscription_id = token.subscription_id
        rows = await self.deliveries.search(
            subscription_id=subscription_id,
            order_id=q.get("order_id"),
            status=_status(q.get("status")),
            since=_time(q.get("since"), "since"),
            until=_time(q.get("until"), "until"),
            limit=_limit(q.get("limit")),
        )
        return JSONResponse({"deliveries": [_jsonable(r) for r in rows]})

    async def get_delivery(self, request: Request, token: Token) -> Response:
        require(token, "read", partner_may=True)
        row = await self._delivery(request, token)
        attempts = await self.deliveries.attempts(row["id"])
        return JSONResponse({**_jsonable(row), "attempt_log": [_jsonable(a) for a in attempts]})

    async def retry_delivery(self, request: Request, token: Token) -> Response:
        require(token, "write", partner_may=True)
        row = await self._delivery(request, token)
        if row["status"] == DeliveryStatus.DELIVERED:
            raise ApiError(409, "conflict", f"{row['id']} was delivered already; nothing to retry")
        if row["status"] in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
            raise ApiError(409, "conflict", f"{row['id']} is {row['status']}: it is being delivered already")
        await resend(self.db, self.producer, delivery=row["id"], topic=self.deliveries_topic)
        await self._audit(token, "delivery.retry", row["id"], {"status": row["status"]}, {"status": "pending"})
        return JSONResponse({"id": row["id"], "status": "pending"}, 202)

    # orders and the audit log

    async def get_order(self, request: Request, token: Token) -> Response:
        require(token, "read")
        order_id = request.path_params["id"]
        order = await self.orders.get(order_id)
        timeline = await self.orders.timeline(order_id)
        if order is None and not timeline:
            raise ApiError(404, "not_found", f"no order {order_id!r}; order ids look like 'shopify:1001'")
        risk = await RiskStore(self.db).get(order_id)
        documents = await InvoiceStore(self.db).for_order(order_id)
        return JSONResponse(
            {
                "order": _jsonable(dataclasses.asdict(order)) if order else None,
                "timeline": [_jsonable(dataclasses.asdict(t)) for t in timeline],
                "workflow_steps": [_jsonable(s) for s in await self.orders.workflow_steps(order_id)],
                "deliveries": [_jsonable(d) for d in await self.deliveries.search(order_id=order_id, limit=200)],
                "refs": await OrderRefs(self.db).all(order_id),
                "risk": _jsonable(dataclasses.asdict(risk)) if risk else None,
                "documents": [
                    {"number": d.number, "kind": d.kind, "total": d.total, "currency": d.currency} for d in documents
                ],
            }
        )

    async def list_audit(self, request: Request, token: Token) -> Response:
        require(token, "admin")
        q = request.query_params
        _only(q.keys(), {"target", "limit"})
        entries = await audit.AuditLog(self.db).recent(target=q.get("target"), limit=_limit(q.get("limit")))
        return JSONResponse({"entries": [_jsonable(dataclasses.asdict(e)) for e in entries]})

    # consumers: lag and replay

    async def list_consumers(self, request: Request, token: Token) -> Response:
        require(token, "read")
        found: list[dict[str, Any]] = []
        for name, group in sorted(self.consumers().items()):
            try:
                rows = await asyncio.to_thread(self.groups.lag, group.group, group.input_topic)
                members = await asyncio.to_thread(self.groups.members, group.group)
            except UnknownTopic as exc:  # its input topic does not exist yet
                found.append({"name": name, "group": group.group, "input_topic": group.input_topic, "error": str(exc)})
                continue
            found.append(
                {
                    "name": name,
                    "group": group.group,
                    "input_topic": group.input_topic,
                    "members": members,
                    "lag": sum(r.lag for r in rows),
                    "partitions": [
                        {"partition": r.partition, "committed": r.committed, "end": r.end, "lag": r.lag} for r in rows
                    ],
                }
            )
        return JSONResponse({"consumers": found})

    async def replay(self, request: Request, token: Token) -> Response:
        require(token, "admin")
        name = request.path_params["name"]
        group = self.consumers().get(name)
        if group is None:
            raise ApiError(404, "not_found", f"no consumer {name!r}; GET /api/v1/consumers lists them")
        body = await _body(request, Replay)
        _aware(body.to_datetime, "to_datetime")
        try:
            plan = await asyncio.to_thread(self.groups.plan, group.group, group.input_topic, body.to_datetime)
        except UnknownTopic as exc:
            raise ApiError(409, "conflict", f"{exc}: nothing to replay before {name}'s input has records") from exc
        except ConfigurationError as exc:  # a time Kafka cannot look up (before 1970)
            raise ApiError(422, "invalid", f"to_datetime: {exc}") from exc
        answer = {
            "consumer": name,
            "group": group.group,
            "input_topic": group.input_topic,
            "to_datetime": body.to_datetime.isoformat(),
            "dry_run": body.dry_run,
            "reprocessed": sum(p.reprocessed for p in plan),
            "partitions": [
                {"partition": p.partition, "current": p.current, "target": p.target, "reprocessed": p.reprocessed}
                for p in plan
            ],
        }
        if not body.dry_run:
            try:
                await asyncio.to_thread(self.groups.reset, group.group, plan, service=name)
            except GroupActive as exc:
                raise ApiError(409, "conflict", str(exc)) from exc
            await self._audit(token, "consumer.replay", name, None, answer)
        return JSONResponse(answer)

    # dead letters

    async def list_queues(self, request: Request, token: Token) -> Response:
        require(token, "read")
        found = []
        for consumer, group in sorted(self.consumers().items()):
            topic = group.dlq_topic
            letters = await self._letters(consumer, topic)
            waiting = sum(1 for d in letters if not d.redriven)
            found.append({"consumer": consumer, "topic": topic, "dead_letters": len(letters), "not_redriven": waiting})
        return JSONResponse({"queues": found})

    async def list_dead_letters(self, request: Request, token: Token) -> Response:
        require(token, "read")
        consumer, topic = self._queue(request)
        letters = await self._letters(consumer, topic)
        return JSONResponse({"consumer": consumer, "topic": topic, "dead_letters": [_letter(d) for d in letters]})

    async def redrive(self, request: Request, token: Token) -> Response:
        require(token, "write")
        consumer, topic = self._queue(request)
        body = await _body(request, Redrive)
        if not (body.all or body.positions or body.event_ids):
            raise ApiError(422, "invalid", 'say which dead letters: "all": true, "positions" or "event_ids"')
        letters = await self._letters(consumer, topic)
        try:
            chosen = select(
                letters,
                positions=body.positions,
                event_ids=body.event_ids,
                everything=body.all,
                include_redriven=body.include_redriven,
            )
        except ConfigurationError as exc:  # asked for dead letters that are not there
            raise ApiError(422, "invalid", str(exc)) from exc
        count = await redrive(self.producer, self.db, consumer, chosen)
        await self._audit(token, "dead_letters.redrive", consumer, None, {"redriven": [d.position for d in chosen]})
        return JSONResponse({"consumer": consumer, "redriven": count, "positions": [d.position for d in chosen]})

    async def _letters(self, consumer: str, topic: str) -> list[DeadLetter]:
        try:
            return await list_dead_letters(self.groups.bootstrap_servers, self.db, consumer, topic)
        except ConfigurationError:  # the topic does not exist yet: nothing has been dead-lettered
            return []

    def _queue(self, request: Request) -> tuple[str, str]:
        consumer = request.path_params["consumer"]
        group = self.consumers().get(consumer)
        if group is None:
            raise ApiError(404, "not_found", f"no consumer {consumer!r}; GET /api/v1/dead-letters lists them")
        return consumer, group.dlq_topic

    # helpers

    def consumers(self) -> Mapping[str, ConsumerGroup]:
        if self._consumers is None:
            self._consumers = self._find_consumers()
        return self._consumers

    async def _subscription(self, request: Request, token: Token) -> Subscription:
        subscription_id = request.path_params["id"]
        own(token, subscription_id, "subscription")
        try:
            return await self.subscriptions.get(subscription_id)
        except UnknownSubscription:
            raise ApiError(404, "not_found", f"no subscription {subscription_id!r}") from None

    async def _delivery(self, request: Request, token: Token) -> dict[str, Any]:
        row = await self.deliveries.get(request.path_params["id"])
        if row is None:
            raise ApiError(404, "not_found", f"no delivery {request.path_params['id']!r}")
        own(token, row["subscription_id"], "delivery")
        return row

    async def _audit(self, token: Token, action: str, target: str, before: Any, after: Any) -> None:
        async with self.db.connection() as conn:
            await audit.record(conn, token.actor, action, target, before, after)


def _unavailable(what: str) -> Response:
    return JSONResponse(
        {"error": "unavailable", "detail": f"{what} is not answering; try again shortly"},
        503,
        headers={"Retry-After": "5"},
    )


async def _body(request: Request, model: type[M], *, empty_ok: bool = False) -> M:
    raw = await request.body()
    if not raw.strip() and empty_ok:
        return model()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_request", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    bad = _unstorable(data)
    if bad is not None:
        raise ApiError(422, "invalid", f"{bad or 'body'}: a NUL or an unpaired surrogate cannot be stored")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid", f"{field}: {first['msg']}") from None


def _unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) PostgreSQL cannot store: NUL, or a lone UTF-16 surrogate."""
    if isinstance(value, str):
        return path if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _unstorable(key, path or "body") is not None:
                return path or "body"
            found = _unstorable(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def _only(given: Any, allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ApiError(422, "invalid", f"unknown query parameter {unknown[0]!r}; known: {', '.join(sorted(allowed))}")


def _status(value: str | None) -> DeliveryStatus | None:
    if value is None:
        return None
    try:
        return DeliveryStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in DeliveryStatus)
        raise ApiError(422, "invalid", f"status: must be one of {known}") from None


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid", f"{name}: an ISO 8601 time, e.g. 2026-12-01T08:00:00Z") from None
    return _aware(parsed, name)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ApiError(422, "invalid", f"{name}: give a time zone, e.g. 2026-12-01T08:00:00Z")
    return value


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise ApiError(422, "invalid", "limit: a whole number from 1 to 500")
    return int(value)


def _letter(d: DeadLetter) -> dict[str, Any]:
    """A dead letter as the API shows it: why, where from, its headers, and its payload (text when it is)."""
    value = d.value or b""
    try:
        payload, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(value).decode(), "base64"
    return {
        "position": d.position,
        "event_id": d.event_id,
        "key": d.key,
        "reason": d.reason,
        "attempts": d.attempts,
        "origin": d.origin,
        "first_failed_at": datetime.fromtimestamp(d.first_failed_at_ms / 1000, UTC).isoformat(),
        "redriven": d.redriven,
        "headers": {k: v.decode("utf-8", "replace") for k, v in d.headers},
        "payload": payload,
        "payload_encoding": encoding,
    }


def _subscription(s: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it: never its secrets (only how many are active)."""
    return {
        "id": s.id,
        "name": s.name,
        "url": s.url,
        "event_types": s.event_types,
        "content_type": s.content_type,
        "headers": s.headers,
        "timeout_ms": s.timeout_ms,
        "rate_limit_per_s": s.rate_limit_per_s,
        "enabled": s.enabled,
        "disabled_reason": s.disabled_reason,
        "failing_since": s.failing_since.isoformat() if s.failing_since else None,
        "secrets": len(s.secrets),
    }


def _jsonable(row: Any) -> Any:
    if isinstance(row, dict):
        return {k: _jsonable(v) for k, v in row.items() if k not in ("value", "headers_raw")}
    if isinstance(row, list | tuple):
        return [_jsonable(v) for v in row]
    if isinstance(row, datetime):
        return row.isoformat()
    if isinstance(row, bytes | memoryview):
        return None
    return row

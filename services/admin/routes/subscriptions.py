"""Subscriptions: list, create (secret shown once), change, disable/enable, rotate the secret, recover, test send."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime

from hookstream.http.outbound.payload import signed_request
from hookstream.http.outbound.sender import Verdict, explain
from hookstream.store.deliveries import resend
from hookstream.store.subscriptions import InvalidSubscription, Subscription, TooManySecrets, UnknownSubscription
from hookstream.store.tokens import Token
from hookstream_services.admin import inputs
from hookstream_services.admin.auth import own, require
from hookstream_services.admin.context import Context
from hookstream_services.admin.errors import ApiError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def whoami(ctx: Context, request: Request, token: Token) -> Response:
    return JSONResponse(
        {"id": token.id, "name": token.name, "scope": token.scope, "subscription_id": token.subscription_id}
    )


async def list_subscriptions(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read", partner_may=True)
    found = await ctx.subscriptions.list()
    if token.scope == "partner":
        found = [s for s in found if s.id == token.subscription_id]
    return JSONResponse({"subscriptions": [s.shown() for s in found]})


async def get_subscription(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read", partner_may=True)
    return JSONResponse((await find(ctx, request, token)).shown())


async def create_subscription(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write")
    body = await inputs.body(request, inputs.NewSubscription)
    inputs.target(body.url, ctx.sender.allow_targets)
    try:
        async with ctx.change(token) as change:
            created = await change.subscriptions.add(**body.model_dump())
            await change.audit("subscription.create", created.id, None, created.shown())
    except InvalidSubscription as exc:
        raise ApiError(422, "invalid", str(exc)) from exc
    secret = next(s.value for s in created.secrets)
    return JSONResponse({**created.shown(), "secret": secret}, 201)  # shown once


async def update_subscription(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write")
    before = await find(ctx, request, token)
    changes = (await inputs.body(request, inputs.SubscriptionChange)).model_dump(exclude_unset=True)
    nulls = sorted(k for k, v in changes.items() if v is None and k != "rate_limit_per_s")
    if nulls:
        raise ApiError(422, "invalid", f"{nulls[0]}: leave it out to keep it; null is only for rate_limit_per_s")
    inputs.target(changes.get("url"), ctx.sender.allow_targets)
    try:
        async with ctx.change(token) as change:
            after = await change.subscriptions.update(before.id, **changes)
            await change.audit("subscription.update", before.id, before.shown(), after.shown())
    except InvalidSubscription as exc:
        raise ApiError(422, "invalid", str(exc)) from exc
    return JSONResponse(after.shown())


async def disable_subscription(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write")
    before = await find(ctx, request, token)
    reason = (await inputs.body(request, inputs.Disable, empty_ok=True)).reason
    async with ctx.change(token) as change:
        after = await change.subscriptions.set_enabled(before.id, False, reason)
        await change.audit("subscription.disable", before.id, before.shown(), after.shown())
    return JSONResponse(after.shown())


async def enable_subscription(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write")
    before = await find(ctx, request, token)
    async with ctx.change(token) as change:
        after = await change.subscriptions.set_enabled(before.id, True)
        await change.audit("subscription.enable", before.id, before.shown(), after.shown())
    return JSONResponse(after.shown())


async def rotate_secret(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write", partner_may=True)
    current = await find(ctx, request, token)
    try:
        async with ctx.change(token) as change:
            secret = await change.subscriptions.rotate_secret(current.id)
            await change.audit("subscription.rotate_secret", current.id, None, {"secrets": "rotated"})
    except TooManySecrets as exc:
        wait_s = max(1, math.ceil(exc.retry_after.total_seconds()))
        raise ApiError(409, "conflict", str(exc), headers={"Retry-After": str(wait_s)}) from exc
    return JSONResponse({"subscription_id": current.id, "secret": secret, "old_secrets_valid_for_s": 86_400})


async def recover(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write", partner_may=True)
    current = await find(ctx, request, token)
    body = await inputs.body(request, inputs.Recover)
    inputs.aware(body.since, "since")
    count = await resend(
        ctx.db,
        ctx.producer,
        subscription_id=current.id,
        since=body.since,
        include_skipped=body.include_skipped,
        topic=ctx.deliveries_topic,
    )
    after = {"queued": count, "since": body.since.isoformat(), "include_skipped": body.include_skipped}
    await ctx.audit(token, "subscription.recover", current.id, None, after)
    return JSONResponse({"subscription_id": current.id, **after}, 202)


async def send_test(ctx: Context, request: Request, token: Token) -> Response:
    """A signed ``webhook.test`` event to the endpoint now, and what came back, explained."""
    require(token, "write", partner_may=True)
    sub = await find(ctx, request, token)
    event = {
        "event_id": f"test_{secrets.token_hex(8)}",
        "type": "webhook.test",
        "subscription_id": sub.id,
        "occurred_at": datetime.now(UTC),
        "message": "a test event from hookstream: no order behind it",
    }
    body, headers = signed_request(sub, event, f"msg_{event['event_id']}")
    attempt = await ctx.sender.post(sub.url, body, headers, timeout_ms=sub.timeout_ms)
    answer = {
        "delivered": attempt.verdict is Verdict.DELIVERED,
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_ms,
        "response_excerpt": attempt.excerpt,
        "error": attempt.error,
        "explanation": explain(attempt),
    }
    await ctx.audit(token, "subscription.test", sub.id, None, {"delivered": answer["delivered"]})
    return JSONResponse(answer)


async def find(ctx: Context, request: Request, token: Token) -> Subscription:
    subscription_id = request.path_params["id"]
    own(token, subscription_id, "subscription")
    try:
        found: Subscription = await ctx.subscriptions.get(subscription_id)
    except UnknownSubscription:
        raise ApiError(404, "not_found", f"no subscription {subscription_id!r}") from None
    return found


ROUTES = [
    ("/api/v1/whoami", whoami, "GET"),
    ("/api/v1/subscriptions", list_subscriptions, "GET"),
    ("/api/v1/subscriptions", create_subscription, "POST"),
    ("/api/v1/subscriptions/{id}", get_subscription, "GET"),
    ("/api/v1/subscriptions/{id}", update_subscription, "PATCH"),
    ("/api/v1/subscriptions/{id}/disable", disable_subscription, "POST"),
    ("/api/v1/subscriptions/{id}/enable", enable_subscription, "POST"),
    ("/api/v1/subscriptions/{id}/rotate-secret", rotate_secret, "POST"),
    ("/api/v1/subscriptions/{id}/recover", recover, "POST"),
    ("/api/v1/subscriptions/{id}/test", send_test, "POST"),
]

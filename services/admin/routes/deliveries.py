"""Deliveries: search them, see one with its attempts, retry one."""

from __future__ import annotations

from typing import Any

from hookstream.store.deliveries import DeliveryStatus, resend
from hookstream.store.tokens import Token
from hookstream_services.admin import inputs, views
from hookstream_services.admin.auth import own, require
from hookstream_services.admin.context import Context
from hookstream_services.admin.errors import ApiError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def list_deliveries(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read", partner_may=True)
    q = request.query_params
    inputs.only_params(q.keys(), {"subscription_id", "order_id", "status", "since", "until", "limit"})
    subscription_id = q.get("subscription_id")
    if token.scope == "partner":
        own(token, subscription_id or token.subscription_id, "subscription")
        subscription_id = token.subscription_id
    rows = await ctx.deliveries.search(
        subscription_id=subscription_id,
        order_id=q.get("order_id"),
        status=inputs.delivery_status(q.get("status")),
        since=inputs.query_time(q.get("since"), "since"),
        until=inputs.query_time(q.get("until"), "until"),
        limit=inputs.page_limit(q.get("limit")),
    )
    return JSONResponse({"deliveries": [views.jsonable(r) for r in rows]})


async def get_delivery(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read", partner_may=True)
    row = await find(ctx, request, token)
    attempts = await ctx.deliveries.attempts(row["id"])
    return JSONResponse({**views.jsonable(row), "attempt_log": [views.attempt(a) for a in attempts]})


async def retry_delivery(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write", partner_may=True)
    row = await find(ctx, request, token)
    if row["status"] == DeliveryStatus.DELIVERED:
        raise ApiError(409, "conflict", f"{row['id']} was delivered already; nothing to retry")
    if row["status"] in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
        raise ApiError(409, "conflict", f"{row['id']} is {row['status']}: it is being delivered already")
    await resend(ctx.db, ctx.producer, delivery=row["id"], topic=ctx.deliveries_topic)
    await ctx.audit(token, "delivery.retry", row["id"], {"status": row["status"]}, {"status": "pending"})
    return JSONResponse({"id": row["id"], "status": "pending"}, 202)


async def find(ctx: Context, request: Request, token: Token) -> dict[str, Any]:
    row: dict[str, Any] | None = await ctx.deliveries.get(request.path_params["id"])
    if row is None:
        raise ApiError(404, "not_found", f"no delivery {request.path_params['id']!r}")
    own(token, row["subscription_id"], "delivery")
    return row


ROUTES = [
    ("/api/v1/deliveries", list_deliveries, "GET"),
    ("/api/v1/deliveries/{id}", get_delivery, "GET"),
    ("/api/v1/deliveries/{id}/retry", retry_delivery, "POST"),
]

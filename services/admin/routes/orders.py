"""An order's timeline across services, and the audit log."""

from __future__ import annotations

import dataclasses
from typing import Any

from hookstream.store import audit
from hookstream.store.invoices import InvoiceStore
from hookstream.store.orders import OrderRefs
from hookstream.store.risk import RiskStore
from hookstream.store.tokens import Token
from hookstream_services.admin import inputs, views
from hookstream_services.admin.auth import require
from hookstream_services.admin.context import Context
from hookstream_services.admin.errors import ApiError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def get_order(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read")
    order_id = request.path_params["id"]
    order = await ctx.orders.get(order_id)
    timeline = await ctx.orders.timeline(order_id)
    if order is None and not timeline:
        raise ApiError(404, "not_found", f"no order {order_id!r}; order ids look like 'shopify:1001'")
    risk = await RiskStore(ctx.db).get(order_id)
    documents = await InvoiceStore(ctx.db).for_order(order_id)
    return JSONResponse(
        {
            "order": views.jsonable(dataclasses.asdict(order)) if order else None,
            "timeline": [views.jsonable(dataclasses.asdict(t)) for t in timeline],
            "workflow_steps": [views.jsonable(s) for s in await ctx.orders.workflow_steps(order_id)],
            "deliveries": await _deliveries(ctx, order_id),
            "refs": await OrderRefs(ctx.db).all(order_id),
            "risk": views.jsonable(dataclasses.asdict(risk)) if risk else None,
            "documents": [
                {"number": d.number, "kind": d.kind, "total": d.total, "currency": d.currency} for d in documents
            ],
        }
    )


async def _deliveries(ctx: Context, order_id: str) -> list[dict[str, Any]]:
    rows = await ctx.deliveries.search(order_id=order_id, limit=200)
    attempts = await ctx.deliveries.attempts_of([r["id"] for r in rows])
    return [{**views.jsonable(r), "attempt_log": [views.attempt(a) for a in attempts.get(r["id"], [])]} for r in rows]


async def list_audit(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "admin")
    q = request.query_params
    inputs.only_params(q.keys(), {"target", "limit"})
    entries = await audit.AuditLog(ctx.db).recent(target=q.get("target"), limit=inputs.page_limit(q.get("limit")))
    return JSONResponse({"entries": [views.jsonable(dataclasses.asdict(e)) for e in entries]})


ROUTES = [
    ("/api/v1/orders/{id}", get_order, "GET"),
    ("/api/v1/audit", list_audit, "GET"),
]

"""The overview the dashboard polls: webhooks in per channel, latency, lag, dead letters, delivery success,
and each endpoint's health. Built at most every few seconds however many people watch."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from hookstream.http.outbound.sender import explain
from hookstream.store.alerts import AlertStore
from hookstream.store.circuits import CircuitLog, OpenCircuit
from hookstream.store.dead_letters import RedriveLog
from hookstream.store.pulse import BUCKET_S, EndpointHealth
from hookstream.store.subscriptions import Subscription
from hookstream.store.tokens import Token
from hookstream_services.admin.auth import require
from hookstream_services.admin.context import Context
from hookstream_services.admin.routes.flow import consumer_lag
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

INTAKE_WINDOW_S = 300
RATE_WINDOW_S = 60
LATENCY_WINDOW_S = 300
HEALTH_WINDOW_S = 900
FRESH_FOR_S = 3.0


async def overview(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read")
    return JSONResponse(await current(ctx))


async def current(ctx: Context) -> dict[str, Any]:
    """The overview, built at most every FRESH_FOR_S (the dashboard's viewers and the alerting share it)."""
    cached = ctx.cache.get("overview")
    if cached is None or time.monotonic() - cached[0] > FRESH_FOR_S:
        cached = (time.monotonic(), await _build(ctx))
        ctx.cache["overview"] = cached
    built: dict[str, Any] = cached[1]
    return built


async def endpoints(ctx: Context, request: Request, token: Token) -> Response:
    """Each endpoint's health; a partner token sees only its own."""
    require(token, "read", partner_may=True)
    answer = await _endpoints(ctx)
    if token.scope == "partner":
        answer = [e for e in answer if e["subscription_id"] == token.subscription_id]
    return JSONResponse({"window_s": HEALTH_WINDOW_S, "endpoints": answer})


async def _build(ctx: Context) -> dict[str, Any]:
    intake, ingest, delivered, endpoints, in_flight = await asyncio.gather(
        ctx.pulse.intake(window_s=INTAKE_WINDOW_S, rate_window_s=RATE_WINDOW_S),
        ctx.pulse.ingest_latency(window_s=LATENCY_WINDOW_S),
        ctx.pulse.delivery_latency(window_s=LATENCY_WINDOW_S),
        _endpoints(ctx),
        ctx.pulse.in_flight(),
    )
    consumers = await consumer_lag(ctx)
    # Every attempt belongs to a subscription's delivery (deleted with it), so the endpoints' sums are the totals.
    attempts = sum(e["attempts"] for e in endpoints)
    succeeded = sum(e["succeeded"] for e in endpoints)
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "intake": {
            "window_s": INTAKE_WINDOW_S,
            "rate_window_s": RATE_WINDOW_S,
            "bucket_s": BUCKET_S,
            "per_s": round(sum(c.per_s for c in intake), 2),
            "channels": [asdict(c) for c in intake],
        },
        "latency": {"window_s": LATENCY_WINDOW_S, "ingest": asdict(ingest), "delivery": asdict(delivered)},
        "deliveries": {
            "window_s": HEALTH_WINDOW_S,
            "attempts": attempts,
            "succeeded": succeeded,
            "success_rate": round(succeeded / attempts, 4) if attempts else None,
            **in_flight,
        },
        "consumers": [{k: c.get(k) for k in ("name", "group", "members", "lag", "error") if k in c} for c in consumers],
        "dead_letters": await _dead_letters(ctx),
        "endpoints": endpoints,
    }


async def _endpoints(ctx: Context) -> list[dict[str, Any]]:
    """Every endpoint's health: its subscription, its attempts in the window, its open circuits."""
    subs, health, circuits = await asyncio.gather(
        ctx.subscriptions.list(), ctx.pulse.endpoints(window_s=HEALTH_WINDOW_S), CircuitLog(ctx.db).open_now()
    )
    by_sub = {h.subscription_id: h for h in health}
    return [_endpoint(s, by_sub.get(s.id), circuits.get(s.id)) for s in subs]


async def _dead_letters(ctx: Context) -> list[dict[str, Any]]:
    """Per consumer: dead letters kept in its topic, and how many of them are not redriven yet."""
    groups = sorted(ctx.consumers().items())
    kept = await asyncio.to_thread(ctx.groups.retained, [g.dlq_topic for _, g in groups])
    redrives = RedriveLog(ctx.db)
    found = []
    for consumer, group in groups:
        marks = kept.get(group.dlq_topic, {})
        size = waiting = None  # unknown this time (the broker could not say): not zero, so nothing resolves
        if marks is not None:
            size = sum(high - low for low, high in marks.values())
            done = await redrives.redriven(consumer) if size else set()
            waiting = size - sum(1 for p, o in done if p in marks and marks[p][0] <= o < marks[p][1])
        found.append({"consumer": consumer, "topic": group.dlq_topic, "dead_letters": size, "not_redriven": waiting})
    return found


def _endpoint(s: Subscription, health: EndpointHealth | None, circuit: OpenCircuit | None) -> dict[str, Any]:
    attempts = health.attempts if health else 0
    succeeded = health.succeeded if health else 0
    if not s.enabled:
        state = "disabled"
    elif s.failing_since is not None:
        state = "failing"
    elif attempts == 0:
        state = "idle"
    else:
        state = "healthy" if succeeded == attempts else "degraded"
    return {
        "subscription_id": s.id,
        "name": s.name,
        "url": s.url,
        "state": state,
        "enabled": s.enabled,
        "disabled_reason": s.disabled_reason,
        "failing_since": s.failing_since.isoformat() if s.failing_since else None,
        "attempts": attempts,
        "succeeded": succeeded,
        "success_rate": round(succeeded / attempts, 4) if attempts else None,
        "last_attempt_at": health.last_attempt_at.isoformat() if health and health.last_attempt_at else None,
        "last_status_code": health.last_status_code if health else None,
        "last_error": health.last_error if health else None,
        "last_failure": _failure(health),
        "circuit": {"state": "closed"}
        if circuit is None
        else {"state": "open", "instances": circuit.instances, "since": circuit.since.isoformat()},
    }


def _failure(health: EndpointHealth | None) -> dict[str, Any] | None:
    """The newest failed attempt, explained in plain words (what the partner portal leads with)."""
    if health is None or health.last_failure is None or health.last_failure_at is None:
        return None
    f = health.last_failure
    return {
        "at": health.last_failure_at.isoformat(),
        "status_code": f.status_code,
        "error": f.error,
        "response_excerpt": f.excerpt,
        "explanation": explain(f),
    }


async def alerts(ctx: Context, request: Request, token: Token) -> Response:
    """What fires now, and the history of what fired and resolved (newest first)."""
    require(token, "read")
    store = AlertStore(ctx.db)
    firing = [{**r, "changed_at": r["changed_at"].isoformat()} for r in await store.firing()]
    history = [{**asdict(e), "at": e.at.isoformat()} for e in await store.history(200)]
    return JSONResponse({"firing": firing, "history": history})


ROUTES = [
    ("/api/v1/overview", overview, "GET"),
    ("/api/v1/alerts", alerts, "GET"),
    ("/api/v1/endpoints", endpoints, "GET"),
]

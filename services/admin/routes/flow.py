"""The consumers: lag per group and partition, replay (reset a group to a time), and their dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

from hookstream.consumer.dlq import DeadLetter, list_dead_letters, redrive, select
from hookstream.errors import ConfigurationError
from hookstream.kafka.groups import GroupActive, UnknownTopic
from hookstream.registry import ConsumerGroup
from hookstream.store.tokens import Token
from hookstream_services.admin import inputs, views
from hookstream_services.admin.auth import require
from hookstream_services.admin.context import Context
from hookstream_services.admin.errors import ApiError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def list_consumers(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read")
    return JSONResponse({"consumers": await consumer_lag(ctx)})


async def consumer_lag(ctx: Context) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name, group in sorted(ctx.consumers().items()):
        try:
            rows = await asyncio.to_thread(ctx.groups.lag, group.group, group.input_topic)
            members = await asyncio.to_thread(ctx.groups.members, group.group)
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
    return found


async def replay(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "admin")
    name = request.path_params["name"]
    group = ctx.consumers().get(name)
    if group is None:
        raise ApiError(404, "not_found", f"no consumer {name!r}; GET /api/v1/consumers lists them")
    body = await inputs.body(request, inputs.Replay)
    inputs.aware(body.to_datetime, "to_datetime")
    try:
        plan = await asyncio.to_thread(ctx.groups.plan, group.group, group.input_topic, body.to_datetime)
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
            await asyncio.to_thread(ctx.groups.reset, group.group, plan, service=name)
        except GroupActive as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        await ctx.audit(token, "consumer.replay", name, None, answer)
    return JSONResponse(answer)


async def list_queues(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "read")
    return JSONResponse({"queues": await queue_sizes(ctx)})


async def queue_sizes(ctx: Context) -> list[dict[str, Any]]:
    found = []
    for consumer, group in sorted(ctx.consumers().items()):
        letters = await _letters(ctx, consumer, group.dlq_topic)
        waiting = sum(1 for d in letters if not d.redriven)
        found.append(
            {"consumer": consumer, "topic": group.dlq_topic, "dead_letters": len(letters), "not_redriven": waiting}
        )
    return found


async def dead_letters(ctx: Context, request: Request, token: Token) -> Response:
    """One page (``limit``, 50 by default, at most 500) in (partition, offset) order, after ``after``: a
    dead-letter topic can hold millions, and a read token must not make the admin hold them all."""
    require(token, "read")
    inputs.only_params(request.query_params.keys(), {"limit", "after"})
    consumer, group = _queue(ctx, request)
    limit = inputs.page_limit(request.query_params.get("limit"))
    after = inputs.position(request.query_params.get("after"), "after")
    letters = await _letters(ctx, consumer, group.dlq_topic, after=after, limit=limit)
    return JSONResponse(
        {
            "consumer": consumer,
            "topic": group.dlq_topic,
            "dead_letters": [views.letter(d, signatures=token.allows("admin")) for d in letters],
            "next": letters[-1].position if len(letters) == limit else None,
        }
    )


async def redrive_letters(ctx: Context, request: Request, token: Token) -> Response:
    require(token, "write")
    consumer, group = _queue(ctx, request)
    body = await inputs.body(request, inputs.Redrive)
    if not (body.all or body.positions or body.event_ids):
        raise ApiError(422, "invalid", 'say which dead letters: "all": true, "positions" or "event_ids"')
    letters = await _letters(ctx, consumer, group.dlq_topic)
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
    count = await redrive(ctx.producer, ctx.db, consumer, chosen)
    await ctx.audit(token, "dead_letters.redrive", consumer, None, {"redriven": [d.position for d in chosen]})
    return JSONResponse({"consumer": consumer, "redriven": count, "positions": [d.position for d in chosen]})


async def _letters(
    ctx: Context, consumer: str, topic: str, *, after: tuple[int, int] | None = None, limit: int | None = None
) -> list[DeadLetter]:
    try:
        return await list_dead_letters(ctx.groups.connection, ctx.db, consumer, topic, after=after, limit=limit)
    except ConfigurationError:  # the topic does not exist yet: nothing has been dead-lettered
        return []


def _queue(ctx: Context, request: Request) -> tuple[str, ConsumerGroup]:
    consumer = request.path_params["consumer"]
    group = ctx.consumers().get(consumer)
    if group is None:
        raise ApiError(404, "not_found", f"no consumer {consumer!r}; GET /api/v1/dead-letters lists them")
    return consumer, group


ROUTES = [
    ("/api/v1/consumers", list_consumers, "GET"),
    ("/api/v1/consumers/{name}/replay", replay, "POST"),
    ("/api/v1/dead-letters", list_queues, "GET"),
    ("/api/v1/dead-letters/{consumer}", dead_letters, "GET"),
    ("/api/v1/dead-letters/{consumer}/redrive", redrive_letters, "POST"),
]

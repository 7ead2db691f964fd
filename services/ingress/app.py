"""The ingress ASGI app: ``POST /webhooks/{channel}``, ``/healthz``, ``/readyz``.

Order of checks per request: channel, size, content type, signature, rate limit, JSON,
contract fields, publish. Rate limiting comes after the signature so unsigned floods
cannot spend a channel's tokens. Every failure is a precise 4xx or a 503 that says
when to retry; a 200 is only sent once the broker has acknowledged the record.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from hookstream import jsonbody
from hookstream.errors import HookstreamError, ProducerQueueFull
from hookstream.lifecycle import Lifecycle
from hookstream.ratelimit import TokenBucket
from hookstream.sensors import Sensor
from hookstream.sensors.prometheus import CONTENT_TYPE, PrometheusSensor
from hookstream.signatures import InvalidSignature
from hookstream.tracing import child_traceparent, clean_tracestate, serving
from hookstream_services.ingress.channels import BadPayload, Channel, build_channels
from hookstream_services.ingress.config import IngressConfig
from hookstream_services.ingress.publisher import Envelope, Publisher
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("hookstream.ingress")

JSON_TYPES = ("application/json",)


def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class TooLarge(Exception):
    pass


# An oversized body is still read (and dropped) before the 413, up to this many bytes in all: a
# server that closes a connection with request bytes unread in its socket makes the kernel reset
# it, and the reset can destroy the 413 before the sender reads it. A `Connection: close` sender
# (urllib always is one) then saw "connection reset" and never learned why. Past the bound the
# connection is closed all the same; a keep-alive connection is drained by uvicorn itself.
DISCARD_FACTOR = 8
DISCARD_MAX_BYTES = 16 * 1024 * 1024


def discard_limit(limit: int) -> int:
    return min(DISCARD_FACTOR * limit, DISCARD_MAX_BYTES)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or TooLarge once it is known to exceed ``limit`` (see DISCARD_MAX_BYTES)."""
    bound = discard_limit(limit)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        # Refused on the header alone and nothing kept. Not even read when the sender waits for a
        # "100 Continue" before sending it (reading would ask for it), or when it is over the bound.
        expects_continue = request.headers.get("expect", "").lower() == "100-continue"
        if int(declared) <= bound and not expects_continue:
            await _consume(request, keep=0, stop_after=bound)
        raise TooLarge
    chunks, size = await _consume(request, keep=limit, stop_after=bound)
    if size > limit:
        raise TooLarge
    return b"".join(chunks)


async def _consume(request: Request, *, keep: int, stop_after: int) -> tuple[list[bytes], int]:
    """Read the body: chunks are kept while the total is within ``keep``; reading stops past ``stop_after``."""
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size <= keep:
                chunks.append(chunk)
            elif size > stop_after:
                break
            else:
                chunks.clear()  # too large: read to the end, keep nothing
    return chunks, size


class Ingress:
    def __init__(
        self,
        config: IngressConfig,
        publisher: Publisher,
        *,
        workers: int = 1,
        clock: Callable[[], float] = time.time,
        metrics: PrometheusSensor | None = None,
        sensors: Sensor | None = None,
    ) -> None:
        """``metrics`` answers ``/metrics``; ``sensors`` hear every answer (by default just ``metrics``)."""
        self.config = config
        self.metrics = metrics or PrometheusSensor()
        self.sensors = sensors or self.metrics
        self.options = config.ingress
        self.publisher = publisher
        self.clock = clock
        self.channels: dict[str, Channel] = build_channels(config.channels)
        self.buckets: dict[str, TokenBucket] = {}
        for name, c in config.channels.items():
            if c.rate_limit_per_s:
                # Each worker process keeps its own bucket, so each gets its share of the configured rate.
                rate = c.rate_limit_per_s / workers
                burst = max(1, math.ceil((c.rate_limit_burst or c.rate_limit_per_s) / workers))
                self.buckets[name] = TokenBucket(rate, burst)
        self.in_flight = 0

    async def webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        with serving(
            "POST",
            "/webhooks/{channel}",
            request.scope["path"],
            request.headers.get("traceparent"),
            request.headers.get("tracestate"),
        ) as answered:
            response = await self._webhook(request)
            answered(response.status_code)
        channel = request.path_params["channel"]
        # An unknown channel is counted as such: a flood of made-up names must not grow the label set.
        label = channel if channel in self.channels else "unknown"
        self.sensors.on_http_request(label, response.status_code, time.perf_counter() - started)
        return response

    async def _webhook(self, request: Request) -> Response:
        name = request.path_params["channel"]
        channel = self.channels.get(name)
        if channel is None:
            return error(404, "unknown_channel", f"no channel named {name!r} is configured")
        try:
            body = await read_body(request, self.options.max_body_bytes)
        except TooLarge:
            return error(413, "body_too_large", f"the body exceeds {self.options.max_body_bytes} bytes")
        except ClientDisconnect:
            return Response(status_code=400)
        content_type = request.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() not in JSON_TYPES:
            return error(415, "unsupported_media_type", "send the webhook as Content-Type: application/json")

        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            channel.verify(headers, body, self.clock())
        except InvalidSignature as exc:
            return error(401, "invalid_signature", str(exc))

        bucket = self.buckets.get(name)
        if bucket is not None:
            wait_s = bucket.take()
            if wait_s:
                return error(
                    429,
                    "rate_limited",
                    f"channel {name!r} is over its rate limit",
                    {"Retry-After": str(max(1, math.ceil(wait_s)))},
                )

        try:
            payload = jsonbody.loads(body)
        except jsonbody.InvalidJson as exc:
            return error(400, "invalid_json", f"the body is not valid JSON: {exc}")
        try:
            described = channel.describe(headers, payload, body)
        except BadPayload as exc:
            return error(400, "invalid_payload", str(exc))

        if self.in_flight >= self.options.max_in_flight:
            return error(503, "overloaded", "too many webhooks waiting for the broker", {"Retry-After": "1"})
        envelope = Envelope(
            event_id=described.event_id,
            channel=name,
            event_type=described.event_type,
            order_key=described.order_key,
            received_at_ms=int(self.clock() * 1000),
            content_type=content_type,
            headers=channel.kept_headers(headers),
            body=body,
            traceparent=child_traceparent(headers.get("traceparent")),
            tracestate=clean_tracestate(headers.get("tracestate"), headers.get("traceparent")),
        )
        self.in_flight += 1
        try:
            await self.publisher.publish(envelope)
        except ProducerQueueFull:
            return error(503, "overloaded", "the producer queue is full", {"Retry-After": "1"})
        except HookstreamError as exc:
            log.warning("publish failed", extra={"channel": name, "event_id": described.event_id, "error": str(exc)})
            return error(503, "broker_unavailable", "the event could not be stored; retry later", {"Retry-After": "5"})
        finally:
            self.in_flight -= 1
        return JSONResponse({"status": "accepted", "event_id": described.event_id})

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if await self.publisher.ready():
            return JSONResponse({"status": "ready"})
        return error(503, "not_ready", "the Kafka broker is not reachable", {"Retry-After": "5"})

    async def openapi(self, request: Request) -> Response:
        text = resources.files("hookstream_schemas").joinpath("ingress.openapi.yaml").read_text()
        return Response(text, media_type="application/yaml")


def create_app(
    config: IngressConfig,
    publisher: Publisher,
    *,
    workers: int = 1,
    probe_port: int | None = None,
    clock: Callable[[], float] = time.time,
    metrics: PrometheusSensor | None = None,
    sensors: Sensor | None = None,
    lifespan: Callable[[Starlette], Any] | None = None,
) -> Starlette:
    ingress = Ingress(config, publisher, workers=workers, clock=clock, metrics=metrics, sensors=sensors)
    routes = [
        Route("/webhooks/{channel}", ingress.webhook, methods=["POST"]),
        Route("/healthz", ingress.healthz, methods=["GET"]),
        Route("/readyz", ingress.readyz, methods=["GET"]),
        Route("/openapi.yaml", ingress.openapi, methods=["GET"]),
        Route("/metrics", ingress.prometheus, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ingress = ingress
    if probe_port is not None:
        app.add_middleware(ProbePort, port=probe_port)
    return app


class ProbePort:
    """With a probe port (``hookstream run ingress`` binds one beside the public port, and every worker
    serves both), the probe port answers only the probes and ``/metrics``, and the public port everything
    but ``/metrics``: what a service counts is not for whoever can reach its webhook endpoint."""

    PROBES = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            on_probe_port = (scope.get("server") or ("", None))[1] == self.port
            path = scope["path"]
            if (path not in self.PROBES) if on_probe_port else (path == "/metrics"):
                await error(404, "not_found", "no such route on this port")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def kafka_lifespan(publisher: Any, tracing: Lifecycle | None = None) -> Callable[[Starlette], Any]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()
            if tracing is not None:
                await tracing.stop()  # flush the spans still batched

    return lifespan

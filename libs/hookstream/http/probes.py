"""The small HTTP port every service serves: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` says the process is alive (its event loop answers). ``/readyz`` runs the service's
readiness checks (broker, database, consumer assigned, producer id) and answers 503 with the
failing ones. ``/metrics`` is the Prometheus text of the process's metrics sensor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookstream.errors import ConfigurationError, HookstreamError
from hookstream.kafka import wait_for_broker
from hookstream.lifecycle import Lifecycle
from hookstream.sensors.prometheus import CONTENT_TYPE, PrometheusSensor
from hookstream.settings import Brokers, KafkaConnection

Check = tuple[str, bool, str]
Readiness = Callable[[], Awaitable[list[Check]]]


class ProbeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKSTREAM_HEALTH_", extra="ignore")

    host: str = "127.0.0.1"  # 0.0.0.0 in a container, so the kubelet and Prometheus reach it
    port: int | None = None  # None: the service's default; 0: any free port (printed at start)


class ProbeServer(Lifecycle):
    def __init__(self, service: str, host: str, port: int, readiness: Readiness, metrics: PrometheusSensor) -> None:
        self.service = service
        self.host = host
        self.port = port
        self.readiness = readiness
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigurationError(
                f"the probe port {self.host}:{self.port} of {self.service} is not free ({exc.strerror}):"
                " give another with --health-port or HOOKSTREAM_HEALTH_PORT (0 picks a free one)"
            ) from exc
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": self.service})

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = await self.readiness()
        body = {
            "status": "ready" if all(ok for _, ok, _ in checks) else "not_ready",
            "service": self.service,
            "checks": [{"name": name, "ok": ok, "detail": detail} for name, ok, detail in checks],
        }
        if body["status"] == "ready":
            return web.json_response(body)
        return web.json_response(body, status=503, headers={"Retry-After": "5"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


class BrokerCheck:
    """Readiness of the Kafka cluster: it answers a metadata request (the answer is kept a second)."""

    def __init__(self, bootstrap_servers: Brokers, *, timeout_ms: int = 1_000) -> None:
        self.connection = KafkaConnection.of(bootstrap_servers)
        self.bootstrap_servers = self.connection.bootstrap_servers
        self.timeout_ms = timeout_ms
        self._checked_at = 0.0
        self._last: Check = ("kafka", False, "not checked yet")

    async def ready(self) -> list[Check]:
        if time.monotonic() - self._checked_at > 1.0:
            self._checked_at = time.monotonic()
            try:
                brokers = await asyncio.to_thread(wait_for_broker, self.connection, timeout_ms=self.timeout_ms)
                self._last = ("kafka", True, f"{brokers} broker(s) at {self.bootstrap_servers}")
            except HookstreamError as exc:
                self._last = ("kafka", False, str(exc))
        return [self._last]

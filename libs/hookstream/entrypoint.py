"""What every ``hookstream run <service>`` does around the service itself.

Read the settings once, wait for the broker, apply migrations and create topics (unless
``--no-migrate``: a setup Job did), build the service from its spec, serve the probe port
(``/healthz``, ``/readyz``, ``/metrics``), run until SIGINT/SIGTERM (a graceful stop) or until
the service fails, and turn configuration errors into one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import uvloop
from pydantic import ValidationError
from pydantic_settings import SettingsError

from hookstream.db.migrations import LIBRARY, apply_migrations, bundled_migrations, pending_migrations
from hookstream.errors import ConfigurationError, HookstreamError
from hookstream.http.probes import BrokerCheck, ProbeServer, ProbeSettings
from hookstream.kafka import TopicAdmin, wait_for_broker
from hookstream.logs import configure_logging
from hookstream.registry import ServiceContext, ServiceSpec
from hookstream.sensors import Sensors
from hookstream.sensors.prometheus import PrometheusSensor
from hookstream.settings import Brokers, LogSettings, StackSettings
from hookstream.tracing import Tracing


def run(spec: ServiceSpec, argv: list[str]) -> int:
    """``hookstream run <name> [options]``; the exit code says how it ended."""
    if spec.main is not None:
        return spec.main(argv)
    parser = argparse.ArgumentParser(prog=f"hookstream run {spec.name}", description=spec.description)
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="apply no migrations and create no topics (a setup Job did: `hookstream setup`)",
    )
    parser.add_argument("--health-port", type=int, default=None, help=f"probe port [default {spec.health_port}]")
    parser.add_argument("--health-host", default=None, help="probe address [env HOOKSTREAM_HEALTH_HOST, 127.0.0.1]")
    options = parser.parse_args(argv)
    configure_logging(LogSettings())
    try:
        probes = ProbeSettings()
        host = options.health_host or probes.host
        port = options.health_port if options.health_port is not None else probes.port
        uvloop.run(serve(spec, no_migrate=options.no_migrate, health_host=host, health_port=port))
    except HookstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValidationError, SettingsError) as exc:
        print(f"error: a setting is invalid (HOOKSTREAM_*, KAFKA_*): {exc}", file=sys.stderr)
        return 2
    return 0


def component_migrations(specs: list[ServiceSpec]) -> dict[str, list]:  # type: ignore[type-arg]
    """The library's shared tables first, then every service's own."""
    return {LIBRARY: bundled_migrations(), **{s.name: s.load_migrations() for s in specs if s.migrations}}


async def migrate(database_url: str, specs: list[ServiceSpec]) -> list[str]:
    """Apply what is pending, component by component; return ``component NNNN_name`` of each one applied."""
    applied: list[str] = []
    for component, migrations in component_migrations(specs).items():
        for m in await apply_migrations(database_url, migrations, component=component):
            applied.append(f"{component} {m.version:04d}_{m.name}")
    return applied


async def serve(spec: ServiceSpec, *, no_migrate: bool, health_host: str, health_port: int | None) -> None:
    assert spec.build is not None
    stack = StackSettings()
    # The address and its TLS/SASL settings, checked once here; every Kafka client gets them from the context.
    kafka, database_url = stack.kafka_connection(), stack.require_database()
    metrics = PrometheusSensor()
    sensors = Sensors([metrics])
    tracing = Tracing.from_env(spec.name)
    if tracing is not None:
        from hookstream.sensors.tracing import TracingSensor  # loads OpenTelemetry: only when asked for

        tracing.install()
        sensors.add(TracingSensor())
    context = ServiceContext(kafka, database_url, spec.settings(), sensors)
    await asyncio.to_thread(wait_for_broker, kafka, timeout_ms=15_000)
    service = spec.build(context)
    if no_migrate:
        pending = await pending_migrations(database_url, component_migrations([spec]))
        if pending:
            raise ConfigurationError(
                f"{len(pending)} migration(s) not applied ({', '.join(pending[:3])}…): run `hookstream setup`"
                " (the migrations Job) first, or start without --no-migrate"
            )
    else:
        await migrate(database_url, [spec])
        await asyncio.to_thread(TopicAdmin(kafka).ensure_topics, service.topics())
    broker = BrokerCheck(kafka)

    async def readiness() -> list[tuple[str, bool, str]]:
        return [*await broker.ready(), *await service.ready()]

    port = spec.health_port if health_port is None else health_port
    probes = ProbeServer(spec.name, health_host, port, readiness, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as parts:
        if tracing is not None:
            await parts.enter_async_context(tracing)  # stops last: it flushes the spans
        await parts.enter_async_context(probes)
        await parts.enter_async_context(service)
        banner = spec.banner(context) if spec.banner else spec.name
        print(f"{banner}; probes on {probes.url} (/healthz /readyz /metrics)", file=sys.stderr)
        failed = asyncio.ensure_future(service.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([failed, stopped], return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            failed.result()
        failed.cancel()


async def setup(bootstrap: Brokers, database_url: str, specs: list[ServiceSpec]) -> tuple[list[str], dict[str, bool]]:
    """What a migrations Job does once for every registered service: migrations, then topics."""
    await asyncio.to_thread(wait_for_broker, bootstrap, timeout_ms=15_000)  # a refused login: one line, at once
    applied = await migrate(database_url, specs)
    wanted = []
    for spec in specs:
        context = ServiceContext(bootstrap, database_url, spec.settings())
        wanted.extend(spec.owned_topics(context))
    created = await asyncio.to_thread(TopicAdmin(bootstrap).ensure_topics, wanted)
    return applied, created

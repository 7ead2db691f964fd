"""``hookstream run delivery``: orders.events.v1 → signed webhooks to every matching subscription."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import uvloop
from hookstream.db import apply_migrations
from hookstream.errors import HookstreamError
from hookstream.kafka import wait_for_broker
from hookstream.logs import configure_logging
from hookstream.settings import LogSettings, StackSettings
from hookstream_services.delivery.service import DeliveryService, DeliverySettings
from pydantic import ValidationError
from pydantic_settings import SettingsError


async def serve() -> None:
    stack = StackSettings()
    bootstrap, database_url = stack.require_kafka(), stack.require_database()
    await asyncio.to_thread(wait_for_broker, bootstrap, timeout_ms=15_000)
    await apply_migrations(database_url)
    settings = DeliverySettings()
    service = DeliveryService(bootstrap, database_url, settings=settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service:
        print(
            f"delivery: {settings.canonical_topic} → {settings.deliveries_topic} → partner endpoints;"
            f" retries {', '.join(settings.retry_schedule)}",
            file=sys.stderr,
        )
        failed = asyncio.ensure_future(service.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([failed, stopped], return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            failed.result()
        failed.cancel()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hookstream run delivery", description=__doc__)
    parser.parse_args(argv)
    configure_logging(LogSettings())
    try:
        uvloop.run(serve())
    except HookstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValidationError, SettingsError) as exc:
        print(f"error: a HOOKSTREAM_ setting is invalid: {exc}", file=sys.stderr)
        return 2
    return 0

"""What every ``hookstream run <consumer service>`` does around the service itself.

Read the stack settings, wait for the broker, apply migrations, build the service, run it until
SIGINT/SIGTERM (a graceful stop) or until it fails, and turn configuration errors into one line.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Protocol

import uvloop
from pydantic import ValidationError
from pydantic_settings import SettingsError

from hookstream.db import apply_migrations
from hookstream.errors import HookstreamError
from hookstream.kafka import wait_for_broker
from hookstream.logs import configure_logging
from hookstream.settings import LogSettings, StackSettings


class Service(Protocol):
    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def wait(self) -> None: ...


Build = Callable[[str, str], tuple[Service, str]]


async def serve(build: Build) -> None:
    stack = StackSettings()
    bootstrap, database_url = stack.require_kafka(), stack.require_database()
    await asyncio.to_thread(wait_for_broker, bootstrap, timeout_ms=15_000)
    await apply_migrations(database_url)
    service, banner = build(bootstrap, database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service:
        print(banner, file=sys.stderr)
        failed = asyncio.ensure_future(service.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([failed, stopped], return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            failed.result()
        failed.cancel()


def run_service(name: str, description: str | None, argv: list[str], build: Build) -> int:
    """``hookstream run <name>``: parse (no options yet), then serve; the exit code says how it ended."""
    argparse.ArgumentParser(prog=f"hookstream run {name}", description=description).parse_args(argv)
    configure_logging(LogSettings())
    try:
        uvloop.run(serve(build))
    except HookstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValidationError, SettingsError) as exc:
        print(f"error: a HOOKSTREAM_ setting is invalid: {exc}", file=sys.stderr)
        return 2
    return 0

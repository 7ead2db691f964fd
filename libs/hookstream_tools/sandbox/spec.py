"""``hookstream run sandbox``: the fake external systems as a process of their own (development and tests only)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from hookstream.registry import ServiceSpec


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hookstream run sandbox", description=SPEC.description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=9500, help="0 picks a free port [default 9500]")
    parser.add_argument("--smtp-port", type=int, default=9525, help="0 picks a free port [default 9525]")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault dice, for repeatable runs")
    options = parser.parse_args(argv)
    try:
        from hookstream_tools.sandbox import SYSTEMS, Sandbox, SandboxServers
    except ImportError as exc:
        print(
            f"error: the sandbox needs the tools extra ({exc.name} is missing): pip install 'hookstream[tools]'",
            file=sys.stderr,
        )
        return 2

    async def serve() -> None:
        servers = SandboxServers(Sandbox(options.seed), options.host, options.http_port, options.smtp_port)
        try:
            await servers.start()
        except OSError as exc:
            raise SystemExit(
                f"error: the sandbox cannot listen: {exc}; choose other ports with --http-port/--smtp-port"
            ) from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"sandbox: {', '.join(f'{s} {servers.url(s)}' for s in SYSTEMS)}", flush=True)
        print(
            f"sandbox: SMTP on {options.host}:{servers.smtp_port}; inspect and break things at"
            f" {servers.http_url}/_sandbox/summary",
            flush=True,
        )
        await stop.wait()
        await servers.stop()

    asyncio.run(serve())
    return 0


SPEC = ServiceSpec(
    name="sandbox",
    description="Development and tests only: fake CRM, warehouse, ERP, risk and SMS over HTTP, and an SMTP server.",
    main=main,
    topics=lambda settings: [],
)

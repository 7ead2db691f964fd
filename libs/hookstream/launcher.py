"""The ``hookstream`` command. The runtime answers what a service image needs by itself:

    hookstream run <service> [options]    run one registered service
    hookstream setup                      migrations and topics of every registered service (a Job)
    hookstream db migrate                 migrations only
    hookstream probe [--pid N]            the image's HEALTHCHECK: is the service in process N (1) healthy?

Everything else (``dev``, ``demo``, ``dlq``, ``subscriptions``, ``deliveries``) is the tools' CLI,
installed with the ``tools`` extra; without it those commands say how to get it.
"""

from __future__ import annotations

import asyncio
import sys
from importlib import metadata

from hookstream import registry
from hookstream.errors import HookstreamError, UnknownService
from hookstream.settings import StackSettings

TOOLS_ENTRY_POINT_GROUP = "hookstream.tools"


def run_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        names = ", ".join(registry.discover()) or "none registered"
        print(f"usage: hookstream run <service> [options]\nservices: {names}", file=sys.stderr)
        return 2 if not argv else 0
    from hookstream import entrypoint

    return entrypoint.run(registry.get(argv[0]), argv[1:])


def setup_command(migrations_only: bool) -> int:
    from hookstream import entrypoint

    stack = StackSettings()
    database_url = stack.require_database()
    specs = list(registry.discover().values())
    if migrations_only:
        applied = asyncio.run(entrypoint.migrate(database_url, specs))
        created: dict[str, bool] = {}
    else:
        applied, created = asyncio.run(entrypoint.setup(stack.kafka_connection(), database_url, specs))
    for line in applied:
        print(f"applied {line}")
    if not applied:
        print("Database schema is up to date.")
    if created:
        new = sorted(name for name, made in created.items() if made)
        print(f"topics: {len(created)} checked, {len(new)} created" + (f" ({', '.join(new)})" if new else ""))
    return 0


def probe_command(argv: list[str]) -> int:
    from hookstream.healthcheck import probe

    pid = int(argv[1]) if argv[:1] == ["--pid"] and len(argv) == 2 and argv[1].isdigit() else None
    if argv and pid is None:
        print("usage: hookstream probe [--pid N]", file=sys.stderr)
        return 2
    healthy, found = probe(pid or 1)
    print(found, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def main() -> None:
    argv = sys.argv[1:]
    try:
        if argv[:1] == ["run"]:
            sys.exit(run_command(argv[1:]))
        if argv == ["setup"]:
            sys.exit(setup_command(migrations_only=False))
        if argv == ["db", "migrate"]:
            sys.exit(setup_command(migrations_only=True))
        if argv[:1] == ["probe"]:
            sys.exit(probe_command(argv[1:]))
    except HookstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, UnknownService) else 1)
    # The tools register their CLI as an entry point: the runtime never names the tooling package.
    tools = [e for e in metadata.entry_points(group=TOOLS_ENTRY_POINT_GROUP) if e.name == "cli"]
    try:
        tools_main = tools[0].load() if tools else None
    except ImportError:  # registered, but the extra's dependencies are not installed
        tools_main = None
    if tools_main is None:
        print(
            "error: this installation has the runtime only (run, setup, db migrate); the developer commands"
            " need the tools: pip install 'hookstream[tools]'",
            file=sys.stderr,
        )
        sys.exit(2)
    tools_main()

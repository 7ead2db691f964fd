"""``hookstream``: the developers' and operators' CLI, one module per command group.

``run``, ``setup`` and ``db migrate`` are the runtime's own (``hookstream.launcher`` answers them
without the tools installed); they are listed here too so ``--help`` shows everything.
"""

from __future__ import annotations

import sys

import click
from hookstream import registry

from hookstream_tools.cli.common import Group, out
from hookstream_tools.cli.deliveries import deliveries
from hookstream_tools.cli.demo import demo
from hookstream_tools.cli.dev import dev
from hookstream_tools.cli.dlq import dlq
from hookstream_tools.cli.invoices import invoices
from hookstream_tools.cli.orders import orders
from hookstream_tools.cli.replay import lag, replay
from hookstream_tools.cli.secrets import secrets
from hookstream_tools.cli.subscriptions import subscriptions
from hookstream_tools.cli.tokens import tokens


@click.group(cls=Group)
@click.version_option(package_name="hookstream")
def cli() -> None:
    """hookstream: webhook-driven order processing on Kafka."""


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("service")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(service: str, args: tuple[str, ...]) -> None:
    """Run one registered service: `hookstream run <service> [--no-migrate] [its options]`."""
    from hookstream.launcher import run_command

    sys.exit(run_command([service, *args]))


@cli.command()
def services() -> None:
    """Every registered service and what it does."""
    for spec in registry.discover().values():
        out.print(f"{spec.name:<14} {spec.description}", markup=False)


@cli.command()
def setup() -> None:
    """Migrations and topics of every registered service (what a deployment's migrations Job runs)."""
    from hookstream.launcher import setup_command

    sys.exit(setup_command(migrations_only=False))


@cli.group(cls=Group)
def db() -> None:
    """PostgreSQL schema."""


@db.command()
def migrate() -> None:
    """Apply pending migrations (the library's, then every registered service's) to DATABASE_URL."""
    from hookstream.launcher import setup_command

    sys.exit(setup_command(migrations_only=True))


for group in (dev, dlq, subscriptions, secrets, deliveries, orders, invoices, tokens, replay, lag, demo):
    cli.add_command(group)


def main() -> None:
    cli(prog_name="hookstream")

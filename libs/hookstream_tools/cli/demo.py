"""``hookstream demo``: the whole pipeline with a demo partner (what `make run` starts)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from hookstream_tools.cli.common import out
from hookstream_tools.cli.dev import describe, resolve_jars
from hookstream_tools.devstack.settings import DevStackSettings


@click.command()
@click.option("--ingress-port", type=int, default=8080, show_default=True)
@click.option("--partner-port", type=int, default=8090, show_default=True, help="the demo partner endpoint")
@click.option("--admin-port", type=int, default=8070, show_default=True, help="the admin API")
@click.option("--once", is_flag=True, help="stop when the partner has received everything (for scripts and CI)")
def demo(ingress_port: int, partner_port: int, admin_port: int, once: bool) -> None:
    """The whole pipeline with a demo partner: what `make run` starts. Ctrl-C stops it all."""
    from collections import defaultdict

    from hookstream.secretbox import SecretsSettings

    from hookstream_tools.demo import run as run_demo
    from hookstream_tools.devstack import DevStack

    stack = DevStack(DevStackSettings())
    before = stack.status()
    was_running = (before.kafka_external or before.kafka_answers) and (
        before.postgres_external or before.postgres_answers
    )
    resolve_jars(stack)
    with out.status("Starting Kafka and PostgreSQL…"):
        status = stack.up()
    out.print(*describe(status), sep="\n")
    # HOOKSTREAM_SECRETS_KEYS from the environment, else the dev key `stack.up()` wrote into stack.env.
    keys = SecretsSettings(_env_file=stack.settings.stack_env_path).keys
    partner: Any = None
    try:
        partner = asyncio.run(
            run_demo(
                status.kafka_bootstrap_servers,
                status.database_url,
                stack.settings.state_dir,
                ingress_port=ingress_port,
                partner_port=partner_port,
                admin_port=admin_port,
                once=once,
                say=lambda line: out.print(line, markup=False),
                secrets_keys=keys.get_secret_value() if keys else "",
            )
        )
    except KeyboardInterrupt:
        out.print("stopping…")
    finally:
        if not was_running:
            stack.down()
            out.print("Kafka and PostgreSQL stopped.")
    if partner is not None:
        by_order: dict[str, list[str]] = defaultdict(list)
        for event in partner.received:
            by_order[event["order_id"]].append(f"#{event['sequence']} {event['type']}")
        out.print(f"\nThe partner received {len(partner.received)} webhooks, every signature verified:")
        for order_id, history in by_order.items():
            out.print(f"  {order_id}: {' → '.join(history)}", markup=False)
        if partner.story:
            out.print("\nWhat the workflows did, order by order (their systems played by the sandbox):")
            for line in partner.story:
                out.print(line, markup=False)
        out.print(
            "Next: `hookstream orders held`, `hookstream invoices list ORDER`, `hookstream dlq list normalizer`,"
            " `hookstream subscriptions list`, the tables in Postgres."
        )

"""``hookstream``: the local stack (``dev``), services (``run``), database (``db``), dead letters (``dlq``)."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from hookstream.errors import HookstreamError
from hookstream.settings import DevStackSettings, StackSettings

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

KAFKA_TOOLS = {
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
}


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


class Group(click.Group):
    """Turns the errors we raise on purpose into one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HookstreamError as exc:
            fail(str(exc))


@click.group(cls=Group)
@click.version_option(package_name="hookstream")
def cli() -> None:
    """hookstream: webhook-driven order processing on Kafka."""


# ---- dev: the local stack ----------------------------------------------------------------


def _dev_settings(state_dir: Path | None, kafka_port: int | None, postgres_port: int | None) -> DevStackSettings:
    overrides: dict[str, Any] = {}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    if kafka_port is not None:
        overrides["kafka_port"] = kafka_port
    if postgres_port is not None:
        overrides["postgres_port"] = postgres_port
    return DevStackSettings(**overrides)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where data, logs and stack.env live [env HOOKSTREAM_DEV_STATE_DIR, default .hookstream].",
)
kafka_port_option = click.option(
    "--kafka-port", type=int, default=None, help="Broker port [env HOOKSTREAM_DEV_KAFKA_PORT, default 19092]."
)
postgres_port_option = click.option(
    "--postgres-port",
    type=int,
    default=None,
    help="PostgreSQL port [env HOOKSTREAM_DEV_POSTGRES_PORT, default 15432].",
)


@cli.group(cls=Group)
def dev() -> None:
    """Local Apache Kafka (KRaft) and PostgreSQL, without Docker."""


def _resolve_jars(stack: Any) -> None:
    if stack.jars.resolved or stack.kafka_external:
        return
    out.print(f"Resolving Apache Kafka {stack.jars.version} from Maven Central into {stack.jars.home} (first run only)")
    started = time.monotonic()
    with out.status("Starting Maven…") as status:

        def progress(count: int, artifact: str) -> None:
            status.update(f"Downloaded {count} artifacts · {artifact}")

        stack.jars.resolve(progress)
    jars = len(list(stack.jars.libs.glob("*.jar")))
    out.print(f"Resolved {jars} jars in {time.monotonic() - started:.1f} s")


@dev.command()
@state_dir_option
@kafka_port_option
@postgres_port_option
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C or SIGTERM stops both servers.")
def up(state_dir: Path | None, kafka_port: int | None, postgres_port: int | None, foreground: bool) -> None:
    """Start Kafka and PostgreSQL (reusing jars and data) and wait until both answer."""
    from hookstream.devstack import DevStack

    stack = DevStack(_dev_settings(state_dir, kafka_port, postgres_port))
    _resolve_jars(stack)
    started = time.monotonic()
    with out.status("Starting Kafka and PostgreSQL…"):
        status = stack.up()
    out.print(f"Stack ready in {time.monotonic() - started:.1f} s", *_describe(status), sep="\n")
    out.print(f"Environment written to {stack.settings.stack_env_path} (`source` it in any shell)")
    if foreground:
        _stay_in_foreground(stack)


def _describe(status: Any) -> list[str]:
    kafka = "external" if status.kafka_external else f"local, pid {status.kafka_pid}"
    pg = "external" if status.postgres_external else f"local, pid {status.postgres_pid}"
    return [
        f"  KAFKA_BOOTSTRAP_SERVERS={status.kafka_bootstrap_servers}  ({kafka})",
        f"  DATABASE_URL={status.database_url}  ({pg})",
    ]


def _stay_in_foreground(stack: Any) -> None:
    from hookstream.devstack.process import log_tail

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    out.print("Running in the foreground; Ctrl-C stops both servers.")
    exit_code = 0
    while not stopping:
        time.sleep(0.5)
        for name, server in (("Kafka", stack.kafka), ("PostgreSQL", stack.postgres)):
            external = stack.kafka_external if name == "Kafka" else stack.postgres_external
            if not external and server.pid is None and not stopping:
                err.print(f"[bold red]{name} exited unexpectedly;[/] last lines of {server.log_path}:")
                err.print(log_tail(server.log_path), markup=False)
                stopping, exit_code = True, 1
    out.print("Stopping…")
    stack.down()
    out.print("Stopped.")
    sys.exit(exit_code)


@dev.command()
@state_dir_option
def down(state_dir: Path | None) -> None:
    """Stop the local servers (data is kept; `make clean` removes it)."""
    from hookstream.devstack import DevStack

    stopped = DevStack(_dev_settings(state_dir, None, None)).down()
    for name, was_running in stopped.items():
        out.print(f"{name}: {'stopped' if was_running else 'was not running'}")


@dev.command()
@state_dir_option
@kafka_port_option
@postgres_port_option
def status(state_dir: Path | None, kafka_port: int | None, postgres_port: int | None) -> None:
    """Print the stack's environment and whether each server answers (exit 1 if one does not)."""
    from hookstream.devstack import DevStack

    stack = DevStack(_dev_settings(state_dir, kafka_port, postgres_port))
    st = stack.status()
    out.print(st.env_lines(), end="")
    for name, pid, answers, external in (
        ("kafka", st.kafka_pid, st.kafka_answers, st.kafka_external),
        ("postgres", st.postgres_pid, st.postgres_answers, st.postgres_external),
    ):
        where = "external" if external else (f"pid {pid}" if pid else "not running")
        out.print(f"# {name}: {'answers' if answers else 'does not answer'} ({where})")
    if not (st.kafka_answers and st.postgres_answers):
        sys.exit(1)


@dev.command()
def fetch() -> None:
    """Resolve the Kafka jars from Maven Central into the cache (no servers started)."""
    from hookstream.devstack import DevStack

    stack = DevStack(DevStackSettings())
    _resolve_jars(stack)
    out.print(f"Kafka {stack.jars.version} jars: {stack.jars.libs}")


@dev.command(
    "kafka-tool",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("tool", type=click.Choice(sorted(KAFKA_TOOLS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kafka_tool(tool: str, args: tuple[str, ...]) -> None:
    """Run one of Kafka's own tools from the resolved jars against the stack, e.g.
    `hookstream dev kafka-tool consumer-groups --describe --all-groups`."""
    from hookstream.devstack import KafkaJars

    jars = KafkaJars(DevStackSettings().cache_dir)
    argv = list(args)
    if "--bootstrap-server" not in argv:
        argv = ["--bootstrap-server", StackSettings().require_kafka(), *argv]
    result = jars.run_tool(KAFKA_TOOLS[tool], *argv)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


# ---- run: services -----------------------------------------------------------------------


def available_services() -> list[str]:
    import hookstream_services

    return sorted(m.name for m in pkgutil.iter_modules(hookstream_services.__path__) if m.ispkg)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("service")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(service: str, args: tuple[str, ...]) -> None:
    """Run one service: `hookstream run <service> [its options]`."""
    services = available_services()
    if service not in services:
        fail(f"unknown service {service!r}; available: {', '.join(services) or 'none yet'}", code=2)
    module = importlib.import_module(f"hookstream_services.{service}.main")
    sys.exit(module.main(list(args)))


# ---- db ----------------------------------------------------------------------------------


@cli.group(cls=Group)
def db() -> None:
    """PostgreSQL schema."""


@db.command()
def migrate() -> None:
    """Apply pending migrations to DATABASE_URL."""
    from hookstream.db import apply_migrations

    applied = asyncio.run(apply_migrations(StackSettings().require_database()))
    if not applied:
        out.print("Database schema is up to date.")
    for m in applied:
        out.print(f"applied {m.version:04d}_{m.name}")


# ---- dlq ---------------------------------------------------------------------------------


@cli.group(cls=Group)
def dlq() -> None:
    """Dead letters of a consumer service: list them, send them back."""


def service_dlq_topic(service: str) -> str | None:
    """The DLQ topic a service's entrypoint declares (``DLQ_TOPIC``), if it declares one."""
    if service not in available_services():
        return None
    declared = getattr(importlib.import_module(f"hookstream_services.{service}.main"), "DLQ_TOPIC", None)
    return declared if isinstance(declared, str) else None


def _dlq_letters(service: str, topic: str | None) -> list[Any]:
    from hookstream.consumer.dlq import list_dead_letters
    from hookstream.db import Database

    stack = StackSettings()
    bootstrap, database_url = stack.require_kafka(), stack.require_database()

    async def read() -> list[Any]:
        async with Database(database_url) as db:
            return await list_dead_letters(bootstrap, db, service, topic or service_dlq_topic(service))

    return asyncio.run(read())


@dlq.command("list")
@click.argument("service")
@click.option("--topic", help="the dead-letter topic, if not the service's own")
@click.option("--all", "show_all", is_flag=True, help="also show dead letters already redriven")
def dlq_list(service: str, topic: str | None, show_all: bool) -> None:
    """What sits in SERVICE's dead-letter topic and why."""
    from rich.table import Table

    letters = _dlq_letters(service, topic)
    shown = [d for d in letters if show_all or not d.redriven]
    if not shown:
        out.print(f"No dead letters waiting for {service} ({len(letters)} redriven before).")
        return
    table = Table("position", "event id", "key", "attempts", "first failed", "reason", "from", box=None)
    for d in shown:
        failed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.first_failed_at_ms / 1000))
        reason = d.reason if not d.redriven else f"{d.reason} [dim](redriven)[/]"
        table.add_row(d.position, d.event_id, d.key or "-", str(d.attempts), failed, reason, d.origin)
    out.print(table)
    out.print(f"{len(shown)} dead letter(s). Send back: hookstream dlq redrive {service} --position P:O | --all")


@dlq.command("redrive")
@click.argument("service")
@click.option("--position", "positions", multiple=True, help="PARTITION:OFFSET of one dead letter (repeatable)")
@click.option("--event-id", "event_ids", multiple=True, help="event id of a dead letter (repeatable)")
@click.option("--all", "everything", is_flag=True, help="every dead letter not redriven yet")
@click.option("--again", is_flag=True, help="include dead letters that were redriven before")
@click.option("--topic", help="the dead-letter topic, if not the service's own")
def dlq_redrive(
    service: str,
    positions: tuple[str, ...],
    event_ids: tuple[str, ...],
    everything: bool,
    again: bool,
    topic: str | None,
) -> None:
    """Send dead letters back to SERVICE's input; idempotent handlers make a second delivery harmless."""
    from hookstream.consumer.dlq import redrive, select
    from hookstream.db import Database
    from hookstream.kafka import Producer

    letters = _dlq_letters(service, topic)
    chosen = select(letters, positions=positions, event_ids=event_ids, everything=everything, include_redriven=again)
    if not chosen:
        out.print("Nothing to redrive: every selected dead letter was redriven before (use --again to resend).")
        return
    stack = StackSettings()

    async def send() -> int:
        from rich.progress import Progress

        async with Database(stack.require_database()) as db, Producer(stack.require_kafka()) as producer:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task(f"redriving to {service}", total=len(chosen))
                return await redrive(producer, db, service, chosen, on_progress=lambda d: progress.advance(task))

    sent = asyncio.run(send())
    out.print(f"Redrove {sent} dead letter(s) to hookstream.{service}.redrive; {service} processes them next.")


# ---- subscriptions -------------------------------------------------------------------------


@cli.group(cls=Group)
def subscriptions() -> None:
    """Partner endpoints that receive signed order webhooks."""


def _with_store(action: Any) -> Any:
    from hookstream.db import Database
    from hookstream.subscriptions import SubscriptionStore

    async def run() -> Any:
        async with Database(StackSettings().require_database()) as db:
            return await action(SubscriptionStore(db))

    return asyncio.run(run())


def _headers(pairs: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            fail(f"header {pair!r} must look like Name: value", code=2)
        headers[name.strip()] = value.strip()
    return headers


def _show(sub: Any) -> None:
    state = "enabled" if sub.enabled else f"disabled ({sub.disabled_reason})"
    rate = f"{sub.rate_limit_per_s:g}/s" if sub.rate_limit_per_s else "unlimited"
    out.print(f"{sub.id}  {sub.name}  {sub.url}")
    out.print(
        f"  events {', '.join(sub.event_types)} · {sub.content_type} · timeout {sub.timeout_ms} ms · {rate} · {state}"
    )


@subscriptions.command("add")
@click.option("--name", required=True)
@click.option("--url", required=True, help="https://partner.example/webhooks")
@click.option("--events", "event_types", multiple=True, required=True, help="order.paid, order.* or * (repeatable)")
@click.option("--content-type", type=click.Choice(["json", "xml"]), default="json", show_default=True)
@click.option("--header", "header_pairs", multiple=True, help="extra header 'Name: value' (repeatable)")
@click.option("--timeout-ms", type=int, default=10_000, show_default=True)
@click.option("--rate-limit", type=float, default=None, help="requests per second to this endpoint")
@click.option("--secret", default=None, help="a whsec_ key to use instead of a generated one")
def subscriptions_add(
    name: str,
    url: str,
    event_types: tuple[str, ...],
    content_type: str,
    header_pairs: tuple[str, ...],
    timeout_ms: int,
    rate_limit: float | None,
    secret: str | None,
) -> None:
    """Subscribe an endpoint; prints its signing secret once."""
    headers = _headers(header_pairs)
    sub = _with_store(
        lambda store: store.add(
            name=name,
            url=url,
            event_types=list(event_types),
            content_type=content_type,
            headers=headers,
            timeout_ms=timeout_ms,
            rate_limit_per_s=rate_limit,
            secret=secret,
        )
    )
    _show(sub)
    out.print(f"  signing secret (give it to the partner; shown once): {sub.signing_secrets()[0]}")


@subscriptions.command("list")
@click.option("--enabled", "enabled_only", is_flag=True, help="only enabled subscriptions")
def subscriptions_list(enabled_only: bool) -> None:
    """Every subscription with its filters and state."""
    subs = _with_store(lambda store: store.list(enabled_only=enabled_only))
    if not subs:
        out.print("No subscriptions yet: hookstream subscriptions add --name N --url URL --events 'order.*'")
    for sub in subs:
        _show(sub)


@subscriptions.command("update")
@click.argument("subscription_id")
@click.option("--name")
@click.option("--url")
@click.option("--events", "event_types", multiple=True, help="replaces the event types (repeatable)")
@click.option("--content-type", type=click.Choice(["json", "xml"]))
@click.option("--header", "header_pairs", multiple=True, help="replaces the extra headers (repeatable)")
@click.option("--timeout-ms", type=int)
@click.option("--rate-limit", type=float)
def subscriptions_update(
    subscription_id: str,
    name: str | None,
    url: str | None,
    event_types: tuple[str, ...],
    content_type: str | None,
    header_pairs: tuple[str, ...],
    timeout_ms: int | None,
    rate_limit: float | None,
) -> None:
    """Change what you name; the rest stays."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "name": name,
            "url": url,
            "content_type": content_type,
            "timeout_ms": timeout_ms,
            "rate_limit_per_s": rate_limit,
        }.items()
        if v is not None
    }
    if event_types:
        changes["event_types"] = list(event_types)
    if header_pairs:
        changes["headers"] = _headers(header_pairs)
    if not changes:
        fail("nothing to update: give at least one option (see --help)", code=2)
    _show(_with_store(lambda store: store.update(subscription_id, **changes)))


@subscriptions.command("disable")
@click.argument("subscription_id")
@click.option("--reason", default="disabled by an operator", show_default=True)
def subscriptions_disable(subscription_id: str, reason: str) -> None:
    """Stop delivering to an endpoint (its events are not queued meanwhile)."""
    _show(_with_store(lambda store: store.set_enabled(subscription_id, False, reason)))


@subscriptions.command("enable")
@click.argument("subscription_id")
def subscriptions_enable(subscription_id: str) -> None:
    """Deliver to an endpoint again."""
    _show(_with_store(lambda store: store.set_enabled(subscription_id, True)))


@subscriptions.command("rotate-secret")
@click.argument("subscription_id")
@click.option("--grace-hours", type=float, default=24, show_default=True, help="how long the old secret keeps signing")
def subscriptions_rotate_secret(subscription_id: str, grace_hours: float) -> None:
    """Issue a new signing secret; both sign until the old one expires."""
    from datetime import timedelta

    fresh = _with_store(lambda store: store.rotate_secret(subscription_id, grace=timedelta(hours=grace_hours)))
    out.print(f"new signing secret (shown once): {fresh}")
    out.print(f"the previous secret keeps signing for {grace_hours:g} h, so the partner can switch without a gap")


# ---- deliveries ----------------------------------------------------------------------------


@cli.group(cls=Group)
def deliveries() -> None:
    """Outbound deliveries: send one again, or recover an endpoint's failures."""


def _resend(**selection: Any) -> int:
    from rich.progress import Progress

    from hookstream.db import Database
    from hookstream.kafka import Producer

    commands = importlib.import_module("hookstream_services.delivery.commands")
    stack = StackSettings()

    async def run() -> int:
        async with Database(stack.require_database()) as db, Producer(stack.require_kafka()) as producer:
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("queueing deliveries", total=None)
                sent: int = await commands.resend(
                    db, producer, on_progress=lambda row: progress.advance(task), **selection
                )
                return sent

    return asyncio.run(run())


@deliveries.command("retry")
@click.argument("delivery_id")
def deliveries_retry(delivery_id: str) -> None:
    """Send one delivery again (a failed or skipped one, or one still retrying)."""
    _resend(delivery=delivery_id)
    out.print(f"{delivery_id} queued again; `hookstream run delivery` sends it next.")


@deliveries.command("recover")
@click.argument("subscription_id")
@click.option("--since", required=True, type=click.DateTime(), help="failed deliveries created since (UTC)")
def deliveries_recover(subscription_id: str, since: Any) -> None:
    """Send again every failed delivery of an endpoint since a time, in their original order."""
    from datetime import UTC

    count = _resend(subscription_id=subscription_id, since=since.replace(tzinfo=UTC))
    out.print(f"{count} failed deliveries of {subscription_id} queued again, oldest first.")


# ---- demo ----------------------------------------------------------------------------------


@cli.command()
@click.option("--ingress-port", type=int, default=8080, show_default=True)
@click.option("--partner-port", type=int, default=8090, show_default=True, help="the demo partner endpoint")
@click.option("--once", is_flag=True, help="stop when the partner has received everything (for scripts and CI)")
def demo(ingress_port: int, partner_port: int, once: bool) -> None:
    """The whole pipeline with a demo partner: what `make run` starts. Ctrl-C stops it all."""
    from collections import defaultdict

    from hookstream.demo import run as run_demo
    from hookstream.devstack import DevStack

    stack = DevStack(DevStackSettings())
    before = stack.status()
    was_running = (before.kafka_external or before.kafka_answers) and (
        before.postgres_external or before.postgres_answers
    )
    _resolve_jars(stack)
    with out.status("Starting Kafka and PostgreSQL…"):
        status = stack.up()
    out.print(*_describe(status), sep="\n")
    partner: Any = None
    try:
        partner = asyncio.run(
            run_demo(
                status.kafka_bootstrap_servers,
                status.database_url,
                stack.settings.state_dir,
                ingress_port=ingress_port,
                partner_port=partner_port,
                once=once,
                say=lambda line: out.print(line, markup=False),
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
        out.print("Next: `hookstream subscriptions list`, `hookstream dlq list normalizer`, the tables in Postgres.")


def main() -> None:
    cli(prog_name="hookstream")

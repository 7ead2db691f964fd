"""``hookstream replay`` and ``hookstream lag``: a consumer's position on its input, and moving it back in time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from hookstream.settings import StackSettings

from hookstream_tools.cli.audit import record
from hookstream_tools.cli.common import fail, out


def _consumer(name: str) -> Any:
    from hookstream import registry

    stack = StackSettings()
    found = registry.consumers(stack.require_kafka(), stack.database_url or "")
    if name not in found:
        fail(f"no consumer {name!r}; consumers: {', '.join(sorted(found))}", code=2)
    return found[name]


def _when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--to-datetime {value!r} is not an ISO 8601 time, e.g. 2026-12-01T08:00:00Z", code=2)
    if parsed.tzinfo is None:
        fail(f"--to-datetime {value!r} needs its time zone, e.g. {value}Z or {value}+01:00", code=2)
    return parsed


@click.command()
@click.argument("consumer")
@click.option("--to-datetime", "to", required=True, help="ISO 8601 with a zone: 2026-12-01T08:00:00Z")
@click.option("--dry-run", is_flag=True, help="show per partition how many records would be read again")
def replay(consumer: str, to: str, dry_run: bool) -> None:
    """Reset a consumer's group on its input to a time, so it reads those records again.

    The consumer must be stopped (every instance): offsets of a group with members cannot change.
    Handlers are idempotent, so what was done before is not done twice."""
    from hookstream.kafka.groups import GroupAdmin

    group = _consumer(consumer)
    admin = GroupAdmin(StackSettings().kafka_connection())
    plan = admin.plan(group.group, group.input_topic, _when(to))
    out.print(f"{group.group} on {group.input_topic}, to {to}:")
    for p in plan:
        current = "none" if p.current is None else str(p.current)
        out.print(f"  partition {p.partition:>3}: {current:>10} → {p.target:<10} ({p.reprocessed:+d} records)")
    total = sum(p.reprocessed for p in plan)
    if dry_run:
        out.print(f"dry run: {total} record(s) would be read again; nothing changed")
        return
    admin.reset(group.group, plan, service=consumer)
    record("consumer.replay", consumer, {"to": to, "partitions": {p.partition: p.target for p in plan}})
    out.print(f"reset: {total} record(s) will be read again when {consumer} starts")


@click.command()
@click.argument("consumer", required=False)
def lag(consumer: str | None) -> None:
    """How far each consumer's group is behind on its input, per partition (all consumers without an argument)."""
    from hookstream import registry
    from hookstream.kafka.groups import GroupAdmin

    stack = StackSettings()
    groups = [_consumer(consumer)] if consumer else list(registry.consumers(stack.require_kafka(), "").values())
    admin = GroupAdmin(stack.kafka_connection())
    for group in groups:
        try:
            rows = admin.lag(group.group, group.input_topic)
        except Exception as exc:  # a topic that does not exist yet: say so, go on with the others
            out.print(f"{group.consumer:18} {group.input_topic}: {exc}", markup=False)
            continue
        out.print(f"{group.consumer:18} {group.input_topic}: lag {sum(r.lag for r in rows)}", markup=False)
        if consumer:
            for r in rows:
                committed = "none" if r.committed is None else str(r.committed)
                out.print(f"  partition {r.partition:>3}: committed {committed:>10}, end {r.end:>10}, lag {r.lag}")

"""``hookstream subscriptions``: partner endpoints that receive signed order webhooks."""

from __future__ import annotations

from typing import Any

import click

from hookstream_tools.cli.audit import Note, audited
from hookstream_tools.cli.common import Group, fail, out, with_store


@click.group(cls=Group)
def subscriptions() -> None:
    """Partner endpoints that receive signed order webhooks."""


def _store() -> Any:
    from hookstream.secretbox import SecretsSettings
    from hookstream.store.subscriptions import SubscriptionStore

    keyring = SecretsSettings().keyring()  # secrets and headers are stored encrypted with these keys
    keyring.require()
    return lambda db: SubscriptionStore(db, keyring)


def _with_store(action: Any) -> Any:
    return with_store(_store(), action)


def _change(action: str, subscription_id: str | None, change: Any) -> Any:
    """A write, audited as the API's are (the subscription as shown before and after), in one transaction."""

    async def audited_change(store: Any, note: Note) -> Any:
        before = None if subscription_id is None else await store.get(subscription_id)
        after = await change(store)
        await note(action, after.id, before and before.shown(), after.shown())
        return after

    return audited(_store(), audited_change)


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
    sub = _change(
        "subscription.create",
        None,
        lambda store: store.add(
            name=name,
            url=url,
            event_types=list(event_types),
            content_type=content_type,
            headers=headers,
            timeout_ms=timeout_ms,
            rate_limit_per_s=rate_limit,
            secret=secret,
        ),
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
    _show(_change("subscription.update", subscription_id, lambda store: store.update(subscription_id, **changes)))


@subscriptions.command("disable")
@click.argument("subscription_id")
@click.option("--reason", default="disabled by an operator", show_default=True)
def subscriptions_disable(subscription_id: str, reason: str) -> None:
    """Stop delivering to an endpoint (its events are not queued meanwhile)."""
    disable = lambda store: store.set_enabled(subscription_id, False, reason)  # noqa: E731
    _show(_change("subscription.disable", subscription_id, disable))


@subscriptions.command("enable")
@click.argument("subscription_id")
def subscriptions_enable(subscription_id: str) -> None:
    """Deliver to an endpoint again."""
    _show(_change("subscription.enable", subscription_id, lambda store: store.set_enabled(subscription_id, True)))


@subscriptions.command("rotate-secret")
@click.argument("subscription_id")
@click.option("--grace-hours", type=float, default=24, show_default=True, help="how long the old secret keeps signing")
def subscriptions_rotate_secret(subscription_id: str, grace_hours: float) -> None:
    """Issue a new signing secret; both sign until the old one expires."""
    from datetime import timedelta

    async def rotate(store: Any, note: Note) -> str:
        fresh: str = await store.rotate_secret(subscription_id, grace=timedelta(hours=grace_hours))
        await note("subscription.rotate_secret", subscription_id, None, {"secrets": "rotated"})
        return fresh

    fresh = audited(_store(), rotate)
    out.print(f"new signing secret (shown once): {fresh}")
    out.print(f"the previous secret keeps signing for {grace_hours:g} h, so the partner can switch without a gap")

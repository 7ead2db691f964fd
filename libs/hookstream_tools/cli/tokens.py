"""``hookstream tokens``: bearer tokens for the admin API (the first one can only come from here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from hookstream_tools.cli.audit import Note, audited
from hookstream_tools.cli.common import Group, fail, out, with_store


def _duration_ms(text: str) -> int:
    from hookstream.consumer.retry import parse_delay
    from hookstream.errors import ConfigurationError

    try:
        return parse_delay(text if not text.endswith("d") else f"{int(text[:-1] or 'x') * 24}h")
    except (ConfigurationError, ValueError):
        fail(f"--expires-in {text!r}: give a duration like 90m, 12h or 30d", code=2)


@click.group(cls=Group)
def tokens() -> None:
    """Bearer tokens for the admin API: read, write, admin, or partner (one subscription)."""


def _with_store(action: Any) -> Any:
    from hookstream.store.tokens import TokenStore

    return with_store(TokenStore, action)


def _audited(change: Any) -> Any:
    from hookstream.store.tokens import TokenStore

    return audited(TokenStore, change)


@tokens.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write", "admin", "partner"]), default="read", show_default=True)
@click.option("--subscription", "subscription_id", default=None, help="the subscription a partner token belongs to")
@click.option("--expires-in", default=None, help="expire after this long: 90m, 12h, 30d (default: until revoked)")
def tokens_create(name: str, scope: str, subscription_id: str | None, expires_in: str | None) -> None:
    """Create a token; its secret is printed once and cannot be shown again."""
    expires_at = None if expires_in is None else datetime.now(UTC) + timedelta(milliseconds=_duration_ms(expires_in))

    async def create(store: Any, note: Note) -> Any:
        made = await store.create(name, scope, subscription_id=subscription_id, expires_at=expires_at)
        token = made[0]
        after = {"name": token.name, "scope": token.scope, "subscription_id": subscription_id, "expires_at": expires_at}
        await note("token.create", token.id, None, after)
        return made

    token, secret = _audited(create)
    until = f", expires {expires_at.isoformat(timespec='minutes')}" if expires_at else ""
    owner = f" for {subscription_id}" if subscription_id else ""
    out.print(f"{token.id}  {token.name}  scope {token.scope}{owner}{until}")
    out.print("Token (shown once; keep it in a secret store):")
    click.echo(secret)


@tokens.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked tokens")
def tokens_list(include_revoked: bool) -> None:
    """Tokens with their scope, when they were last used, and whether they are revoked."""
    found = _with_store(lambda store: store.list(include_revoked=include_revoked))
    if not found:
        out.print("No tokens. `hookstream tokens create NAME --scope admin` makes the first.")
    for t in found:
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never used"
        state = f"revoked {t.revoked_at.isoformat(timespec='seconds')}" if t.revoked_at else "live"
        if not t.revoked_at and t.expires_at is not None:
            gone = t.expires_at <= datetime.now(UTC)
            state = f"{'expired' if gone else 'expires'} {t.expires_at.isoformat(timespec='seconds')}"
        owner = f" ({t.subscription_id})" if t.subscription_id else ""
        out.print(f"{t.id}  {t.name}  {t.scope}{owner}  {used}  {state}", markup=False)


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token at once (by its id, tok_…)."""

    async def revoke(store: Any, note: Note) -> Any:
        token = await store.revoke(token_id)
        await note("token.revoke", token.id, None, {"revoked_at": token.revoked_at})
        return token

    token = _audited(revoke)
    out.print(f"{token.id} ({token.name}) revoked; requests with it now get 401")

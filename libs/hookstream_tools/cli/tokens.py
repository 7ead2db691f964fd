"""``hookstream tokens``: bearer tokens for the admin API (the first one can only come from here)."""

from __future__ import annotations

from typing import Any

import click

from hookstream_tools.cli.common import Group, out, with_store


@click.group(cls=Group)
def tokens() -> None:
    """Bearer tokens for the admin API: read, write, admin, or partner (one subscription)."""


def _with_store(action: Any) -> Any:
    from hookstream.store.tokens import TokenStore

    return with_store(TokenStore, action)


@tokens.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write", "admin", "partner"]), default="read", show_default=True)
@click.option("--subscription", "subscription_id", default=None, help="the subscription a partner token belongs to")
def tokens_create(name: str, scope: str, subscription_id: str | None) -> None:
    """Create a token; its secret is printed once and cannot be shown again."""
    token, secret = _with_store(lambda store: store.create(name, scope, subscription_id=subscription_id))
    out.print(f"{token.id}  {token.name}  scope {token.scope}" + (f" for {subscription_id}" if subscription_id else ""))
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
        owner = f" ({t.subscription_id})" if t.subscription_id else ""
        out.print(f"{t.id}  {t.name}  {t.scope}{owner}  {used}  {state}", markup=False)


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token at once (by its id, tok_…)."""
    token = _with_store(lambda store: store.revoke(token_id))
    out.print(f"{token.id} ({token.name}) revoked; requests with it now get 401")

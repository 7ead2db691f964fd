"""``hookstream secrets``: the keys partner secrets and custom headers are encrypted with at rest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from hookstream_tools.cli.common import Group, err, out, with_store


@click.group(cls=Group)
def secrets() -> None:
    """The keys partner secrets and custom headers are encrypted with at rest (HOOKSTREAM_SECRETS_KEYS)."""


def _keyring(*, require: bool = True) -> Any:
    from hookstream.secretbox import SecretsSettings

    keyring = SecretsSettings().keyring()
    if require:
        keyring.require()
    return keyring


def _with_store(keyring: Any, action: Any) -> Any:
    from hookstream.store.subscriptions import SubscriptionStore

    return with_store(lambda db: SubscriptionStore(db, keyring), action)


@secrets.command("new-key")
@click.option("--id", "key_id", default=None, help="the key's id [default: k and today's date, e.g. k20260301]")
def secrets_new_key(key_id: str | None) -> None:
    """Print a fresh key (id:base64 of 32 random bytes) for HOOKSTREAM_SECRETS_KEYS."""
    from hookstream.secretbox import new_key

    out.print(new_key(key_id or f"k{datetime.now(UTC):%Y%m%d}"), markup=False)
    err.print(
        "Put it first in HOOKSTREAM_SECRETS_KEYS only once every service can read with it (see docs/deployment.md),"
        " keep the old keys after it, then run `hookstream secrets rotate`.",
        markup=False,
    )


@secrets.command("rotate")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=100, show_default=True)
def secrets_rotate(batch_size: int) -> None:
    """Re-encrypt every stored secret and header under the newest key (the first of HOOKSTREAM_SECRETS_KEYS),
    plain-text rows from before encryption included. Idempotent, in batches (each one transaction, its rows
    locked), safe while services run."""

    keyring = _keyring()
    primary = keyring.primary

    async def rotate(store: Any) -> tuple[int, dict[str, int]]:
        await store.check_keys()  # every key in use is readable before anything is rewritten
        total = await store.stale()
        done, after = 0, ""
        while ids := await store.reseal(after=after, limit=batch_size):
            done, after = done + len(ids), ids[-1]
            out.print(f"re-sealed {done}/{max(total, done)} subscriptions under key {primary!r}")
        return done, await store.key_usage()

    done, usage = _with_store(keyring, rotate)
    if done == 0:
        out.print(f"nothing to re-seal: every subscription is sealed with {primary!r}")
    behind = {key_id: n for key_id, n in usage.items() if key_id != primary}
    for key_id, count in behind.items():
        what = "plain text" if key_id == "" else f"sealed with {key_id!r}"
        out.print(
            f"{count} subscription(s) are {what} again (written meanwhile by a service that still has an older"
            f" key first): run this again once every service has {primary!r} first"
        )
    for key_id in keyring.ids[1:]:
        if key_id not in behind:
            out.print(
                f"nothing is sealed with {key_id!r} any more: drop it from HOOKSTREAM_SECRETS_KEYS once every"
                f" service runs with {primary!r} first"
            )


@secrets.command("status")
def secrets_status() -> None:
    """How many subscriptions are sealed with each key, and how many are still plain text."""
    keyring = _keyring(require=False)
    usage: dict[str, int] = _with_store(keyring, lambda store: store.key_usage())
    out.print(
        f"new values are sealed with {keyring.ids[0]!r}; readable: {', '.join(map(repr, keyring.ids))}"
        if keyring
        else "HOOKSTREAM_SECRETS_KEYS is not set: nothing can be read or written",
        markup=False,
    )
    if not usage:
        out.print("no subscriptions yet")
    for key_id, count in usage.items():
        if key_id == "":
            out.print(f"plain text (from before encryption): {count} subscription(s): `hookstream secrets rotate`")
        else:
            missing = "" if key_id in keyring.ids else " (not in HOOKSTREAM_SECRETS_KEYS: unreadable here)"
            out.print(f"{key_id}: {count} subscription(s){missing}", markup=False)

"""Writes made from the command line are in the audit log with the actor ``cli:<os user>``, like the
API's; a token may expire, and then answers as a revoked one does."""

from __future__ import annotations

import asyncio
import getpass
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from hookstream.db import Database
from hookstream.store.audit import AuditLog
from hookstream.store.tokens import TokenStore


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    command = [sys.executable, "-m", "hookstream", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_token_writes_from_the_cli_are_audited_as_the_os_user(migrated_database_url: str) -> None:
    created = await asyncio.to_thread(_cli, migrated_database_url, "tokens", "create", "ci", "--expires-in", "30d")
    assert created.returncode == 0, created.stderr
    token_id = created.stdout.split()[0]
    assert "expires 20" in created.stdout
    revoked = await asyncio.to_thread(_cli, migrated_database_url, "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    async with Database(migrated_database_url) as db:
        entries = await AuditLog(db).recent(target=token_id)
    assert [(e.actor, e.action) for e in reversed(entries)] == [
        (f"cli:{getpass.getuser()}", "token.create"),
        (f"cli:{getpass.getuser()}", "token.revoke"),
    ]
    assert entries[-1].after["scope"] == "read"
    assert entries[-1].after["expires_at"].startswith(str((datetime.now(UTC) + timedelta(days=30)).year))


async def test_a_failed_cli_write_leaves_no_audit_entry_and_one_clear_line(migrated_database_url: str) -> None:
    unknown = await asyncio.to_thread(_cli, migrated_database_url, "tokens", "revoke", "tok_nope")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        "error: no token 'tok_nope'; `hookstream tokens list` shows them",
    )
    bad = await asyncio.to_thread(_cli, migrated_database_url, "tokens", "create", "x", "--expires-in", "soon")
    assert (bad.returncode, bad.stderr.strip()) == (
        2,
        "error: --expires-in 'soon': give a duration like 90m, 12h or 30d",
    )
    async with Database(migrated_database_url) as db:
        assert await AuditLog(db).recent() == []


async def test_an_expired_token_is_refused_like_a_revoked_one(migrated_database_url: str) -> None:
    async with Database(migrated_database_url) as db:
        store = TokenStore(db)
        token, secret = await store.create("short", "read", expires_at=datetime.now(UTC) + timedelta(seconds=1))
        assert token.expires_at is not None
        assert await store.authenticate(secret) is not None
        await asyncio.sleep(1.2)
        assert await store.authenticate(secret) is None
        listed = await asyncio.to_thread(_cli, migrated_database_url, "tokens", "list")
        assert f"{token.id}  short  read  " in listed.stdout
        assert "expired 20" in listed.stdout


async def test_subscription_writes_from_the_cli_are_audited_without_their_credentials(
    migrated_database_url: str,
) -> None:
    who = f"cli:{getpass.getuser()}"
    added = await asyncio.to_thread(
        _cli,
        migrated_database_url,
        *("subscriptions", "add", "--name", "erp", "--url", "https://erp.example/hooks?key=k-42"),
        *("--events", "order.*", "--header", "Authorization: Bearer partner-key"),
    )
    assert added.returncode == 0, added.stderr
    sub_id = added.stdout.split()[0]
    for args in (
        ("disable", sub_id),
        ("enable", sub_id),
        ("rotate-secret", sub_id),
        ("update", sub_id, "--timeout-ms", "2500"),
    ):
        done = await asyncio.to_thread(_cli, migrated_database_url, "subscriptions", *args)
        assert done.returncode == 0, done.stderr
    async with Database(migrated_database_url) as db:
        entries = list(reversed(await AuditLog(db).recent(target=sub_id)))
    assert [(e.actor, e.action) for e in entries] == [
        (who, "subscription.create"),
        (who, "subscription.disable"),
        (who, "subscription.enable"),
        (who, "subscription.rotate_secret"),
        (who, "subscription.update"),
    ]
    assert (entries[1].before["enabled"], entries[1].after["enabled"]) == (True, False)
    assert (entries[-1].before["timeout_ms"], entries[-1].after["timeout_ms"]) == (10_000, 2_500)
    kept = str([(e.before, e.after) for e in entries])
    assert "partner-key" not in kept  # header values masked, as the API keeps them
    assert "k-42" not in kept
    assert entries[0].after["headers"] == {"Authorization": "***"}

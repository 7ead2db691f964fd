"""Subscriptions in the real database, through the library and `hookstream subscriptions`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from hookstream.db import Database
from hookstream.store.subscriptions import InvalidSubscription, SubscriptionStore, UnknownSubscription
from standardwebhooks import Webhook

from tests.keys import KEYRING


@pytest.fixture
async def store(migrated_database_url: str) -> AsyncIterator[SubscriptionStore]:
    async with Database(migrated_database_url) as db:
        yield SubscriptionStore(db, KEYRING)


async def test_add_update_disable_rotate(store: SubscriptionStore) -> None:
    sub = await store.add(name="acme", url="https://acme.example/hooks", event_types=["order.*"], rate_limit_per_s=50)
    assert sub.wants("order.paid")
    [first_secret] = sub.signing_secrets()
    assert first_secret.startswith("whsec_")
    Webhook(first_secret)  # a key the official library accepts

    updated = await store.update(sub.id, event_types=["order.paid", "order.refunded"], content_type="xml")
    assert (updated.event_types, updated.content_type, updated.rate_limit_per_s) == (
        ["order.paid", "order.refunded"],
        "xml",
        50,
    )
    assert not updated.wants("order.created")
    with pytest.raises(InvalidSubscription, match="absolute http"):
        await store.update(sub.id, url="partner.example")

    fresh = await store.rotate_secret(sub.id, grace=timedelta(hours=1))
    assert (await store.get(sub.id)).signing_secrets() == [fresh, first_secret]

    disabled = await store.set_enabled(sub.id, False, "410 Gone from the endpoint")
    assert (disabled.enabled, disabled.disabled_reason, disabled.wants("order.paid")) == (
        False,
        "410 Gone from the endpoint",
        False,
    )
    assert await store.list(enabled_only=True) == []
    with pytest.raises(UnknownSubscription, match="subscriptions list"):
        await store.get("sub_nope")


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "hookstream", "subscriptions", *args], env=env, capture_output=True, text=True
    )


def test_cli(migrated_database_url: str) -> None:
    url = migrated_database_url
    added = _cli("add", "--name", "acme", "--url", "https://acme.example/h", "--events", "order.*", database_url=url)
    assert added.returncode == 0, added.stderr
    sub_id = re.search(r"(sub_[0-9a-f]+)", added.stdout).group(1)  # type: ignore[union-attr]
    assert "signing secret (give it to the partner; shown once): whsec_" in added.stdout

    listed = _cli("list", database_url=url)
    assert sub_id in listed.stdout
    assert "order.*" in listed.stdout

    updated = _cli("update", sub_id, "--rate-limit", "10", "--header", "X-Partner: acme", database_url=url)
    assert "10/s" in updated.stdout, updated.stderr
    rotated = _cli("rotate-secret", sub_id, "--grace-hours", "2", database_url=url)
    assert "new signing secret (shown once): whsec_" in rotated.stdout
    disabled = _cli("disable", sub_id, "--reason", "partner asked", database_url=url)
    assert "disabled (partner asked)" in disabled.stdout

    bad = _cli("add", "--name", "x", "--url", "https://x.example", "--events", "Order Paid", database_url=url)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert "event type 'Order Paid' is not like order.paid, order.* or *" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = _cli("disable", "sub_missing", database_url=url)
    assert unknown.returncode == 1
    assert "no subscription 'sub_missing'" in unknown.stderr
    header = _cli("update", sub_id, "--header", "nocolon", database_url=url)
    assert header.returncode == 2
    assert "must look like Name: value" in header.stderr

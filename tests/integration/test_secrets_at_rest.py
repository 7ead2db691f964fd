"""Partner secrets and custom headers at rest in the real database: sealed (AES-256-GCM), re-sealed by
`hookstream secrets rotate`, legacy plain-text rows read and sealed, a wrong or missing key refused at start."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hookstream.db import Database
from hookstream.errors import SealedValueUnreadable, SecretsKeysMissing, UnknownSecretsKey
from hookstream.secretbox import Keyring, SecretsSettings
from hookstream.store.subscriptions import KeyCheck, SubscriptionStore, TooManySecrets
from hookstream_services.admin.config import AdminSettings
from hookstream_services.admin.service import AdminService
from hookstream_tools.devstack.process import free_port

from tests.keys import KEYRING, TEST_SECRETS_KEYS
from tests.service_processes import pipeline_env

K2 = "k2:" + base64.b64encode(bytes(range(100, 132))).decode()
PARTNER_TOKEN = "Bearer partner-token-0d6f1c"
SECRET = "whsec_" + base64.b64encode(b"twenty-four bytes secret").decode()


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    async with Database(migrated_database_url) as database:
        yield database


def _raw_rows(database_url: str) -> list[dict[str, Any]]:
    """Every subscription row as the database (and a dump of it) holds it."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT row_to_json(s)::text FROM subscriptions s ORDER BY id").fetchall()
    return [json.loads(text) for (text,) in rows]


def _cli(database_url: str, *args: str, keys: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "HOOKSTREAM_SECRETS_KEYS": keys, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "hookstream", "secrets", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_no_secret_or_header_value_is_stored_in_plain_text(db: Database, migrated_database_url: str) -> None:
    store = SubscriptionStore(db, KEYRING)
    sub = await store.add(
        name="acme",
        url="https://acme.example/hooks",
        event_types=["order.*"],
        headers={"Authorization": PARTNER_TOKEN},
        secret=SECRET,
    )
    fresh = await store.rotate_secret(sub.id)
    await store.update(sub.id, headers={"Authorization": PARTNER_TOKEN, "X-Api-Key": "key-7f3a"})
    [row] = _raw_rows(migrated_database_url)
    dumped = json.dumps(row)
    for plain in (SECRET, fresh, PARTNER_TOKEN, "partner-token", "key-7f3a", "whsec_"):
        assert plain not in dumped, f"{plain!r} is in the row"
    assert (row["secrets"], row["headers"]) == (None, None)
    for column in ("secrets_sealed", "headers_sealed"):
        assert Keyring.key_id(row[column]) == "test1", row[column]
    back = await store.get(sub.id)
    assert back.signing_secrets() == [fresh, SECRET]
    assert back.headers == {"Authorization": PARTNER_TOKEN, "X-Api-Key": "key-7f3a"}


async def test_a_sealed_value_moved_to_another_row_does_not_open(db: Database, migrated_database_url: str) -> None:
    store = SubscriptionStore(db, KEYRING)
    a = await store.add(name="a", url="https://a.example/", event_types=["*"], secret=SECRET)
    b = await store.add(name="b", url="https://b.example/", event_types=["*"])
    async with db.connection() as conn:  # someone with write access to the table copies a's secrets to b
        await conn.execute(
            "UPDATE subscriptions SET secrets_sealed = (SELECT secrets_sealed FROM subscriptions WHERE id = %s)"
            " WHERE id = %s",
            (a.id, b.id),
        )
    with pytest.raises(SealedValueUnreadable, match=rf"subscriptions\.secrets:{b.id} does not decrypt"):
        await store.get(b.id)
    assert (await store.get(a.id)).signing_secrets() == [SECRET]


async def _legacy_row(db: Database, sub_id: str, secret: str, headers: dict[str, str]) -> None:
    """A row as the code before migration 0015 wrote it: secrets and headers as plain JSON."""
    secrets = [{"value": secret, "created_at": "2026-01-02T03:04:05+00:00", "expires_at": None}]
    async with db.connection() as conn:
        await conn.execute(
            """INSERT INTO subscriptions (id, name, url, event_types, secrets, content_type, headers, timeout_ms)
               VALUES (%s, 'legacy', 'https://legacy.example/hooks', '{order.*}', %s, 'json', %s, 10000)""",
            (sub_id, json.dumps(secrets), json.dumps(headers)),
        )


async def test_rotate_reseals_every_value_under_the_newest_key_in_batches(
    db: Database, migrated_database_url: str
) -> None:
    old = SubscriptionStore(db, KEYRING)
    made = [
        await old.add(name=f"p{n}", url=f"https://p{n}.example/", event_types=["*"], headers={"Authorization": f"t{n}"})
        for n in range(3)
    ]
    await _legacy_row(db, "sub_legacy", SECRET, {"Authorization": PARTNER_TOKEN})
    before = {s.id: (s.signing_secrets(), s.headers) for s in await old.list()}
    assert len(before) == 4

    rotated = _cli(migrated_database_url, "rotate", "--batch-size", "3", keys=f"{K2},{TEST_SECRETS_KEYS}")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-sealed 3/4 subscriptions under key 'k2'" in rotated.stdout
    assert "re-sealed 4/4 subscriptions under key 'k2'" in rotated.stdout
    assert "nothing is sealed with 'test1' any more" in rotated.stdout
    rows = _raw_rows(migrated_database_url)
    assert {Keyring.key_id(r[c]) for r in rows for c in ("secrets_sealed", "headers_sealed")} == {"k2"}
    assert all(r["secrets"] is None and r["headers"] is None for r in rows)
    assert PARTNER_TOKEN not in json.dumps(rows)

    only_new = SubscriptionStore(db, Keyring.parse(K2))  # the old key can go now
    assert {s.id: (s.signing_secrets(), s.headers) for s in await only_new.list()} == before
    await KeyCheck(only_new).start()
    with pytest.raises(UnknownSecretsKey, match="key 'k2'") as caught:
        await old.get(made[0].id)
    assert caught.value.key_id == "k2"

    again = _cli(migrated_database_url, "rotate", keys=f"{K2},{TEST_SECRETS_KEYS}")
    assert again.returncode == 0, again.stderr
    assert "nothing to re-seal: every subscription is sealed with 'k2'" in again.stdout
    status = _cli(migrated_database_url, "status", keys=K2)
    assert status.returncode == 0, status.stderr
    assert "k2: 4 subscription(s)" in status.stdout


async def test_a_legacy_plain_text_row_is_read_and_sealed_by_the_next_write(
    db: Database, migrated_database_url: str
) -> None:
    store = SubscriptionStore(db, KEYRING)
    await _legacy_row(db, "sub_legacy", SECRET, {"Authorization": PARTNER_TOKEN})
    legacy = await store.get("sub_legacy")
    assert (legacy.signing_secrets(), legacy.headers) == ([SECRET], {"Authorization": PARTNER_TOKEN})
    assert [s.id for s in await store.list()] == ["sub_legacy"]
    await store.update("sub_legacy", timeout_ms=2_000)  # a write that names neither secrets nor headers
    [row] = _raw_rows(migrated_database_url)
    assert (row["secrets"], row["headers"]) == (None, None)
    assert PARTNER_TOKEN not in json.dumps(row)
    assert SECRET not in json.dumps(row)
    assert (await store.get("sub_legacy")).signing_secrets() == [SECRET]


async def test_the_start_check_names_a_missing_or_wrong_key(db: Database) -> None:
    await SubscriptionStore(db, KEYRING).add(name="a", url="https://a.example/", event_types=["*"])
    await KeyCheck(SubscriptionStore(db, KEYRING)).start()
    with pytest.raises(UnknownSecretsKey, match="sealed with key 'test1', which HOOKSTREAM_SECRETS_KEYS does not"):
        await KeyCheck(SubscriptionStore(db, Keyring.parse(K2))).start()
    impostor = Keyring.parse("test1:" + base64.b64encode(bytes(32)).decode())
    with pytest.raises(SealedValueUnreadable, match="key 'test1' in HOOKSTREAM_SECRETS_KEYS is not the key"):
        await KeyCheck(SubscriptionStore(db, impostor)).start()
    with pytest.raises(SecretsKeysMissing, match="HOOKSTREAM_SECRETS_KEYS is not set"):
        await KeyCheck(SubscriptionStore(db, Keyring())).start()


async def test_two_services_with_different_bytes_under_one_key_id_are_caught_before_anything_is_stored(
    db: Database,
) -> None:
    await KeyCheck(SubscriptionStore(db, KEYRING)).start()  # the first to start leaves a canary
    impostor = Keyring.parse("test1:" + base64.b64encode(bytes(32)).decode())
    with pytest.raises(SealedValueUnreadable, match="key 'test1' in HOOKSTREAM_SECRETS_KEYS is not the key"):
        await KeyCheck(SubscriptionStore(db, impostor)).start()


async def test_the_admin_will_not_start_without_keys(kafka_bootstrap: str, migrated_database_url: str) -> None:
    settings = AdminSettings(port=0, alert_interval_s=0, secrets=SecretsSettings(_env_file=None, keys=None))
    with pytest.raises(SecretsKeysMissing, match="HOOKSTREAM_SECRETS_KEYS is not set"):
        async with AdminService(kafka_bootstrap, migrated_database_url, settings=settings):
            pass


def test_hookstream_run_delivery_with_a_wrong_key_is_one_line_at_start(
    kafka_bootstrap: str, migrated_database_url: str, unique_name: str, tmp_path: Path
) -> None:
    added = subprocess.run(
        [
            *(sys.executable, "-m", "hookstream", "subscriptions", "add", "--name", "erp"),
            *(
                "--url",
                "https://erp.example/hooks",
                "--events",
                "order.*",
                "--header",
                f"Authorization: {PARTNER_TOKEN}",
            ),
        ],
        env={**os.environ, "DATABASE_URL": migrated_database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    env = {
        **os.environ,
        **pipeline_env(unique_name)[0]["delivery"],
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": migrated_database_url,
        "HOOKSTREAM_SECRETS_KEYS": "test1:" + base64.b64encode(bytes(32)).decode(),
        "HOOKSTREAM_HEALTH_PORT": str(free_port()),
    }
    run = subprocess.run(
        [sys.executable, "-m", "hookstream", "run", "delivery"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "key 'test1' in HOOKSTREAM_SECRETS_KEYS is not the key" in errors[0]
    assert "Traceback" not in run.stderr
    assert base64.b64encode(bytes(32)).decode() not in run.stderr


def test_no_key_at_all_is_one_line_from_the_cli(migrated_database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HOOKSTREAM_SECRETS_KEYS"}
    listed = subprocess.run(
        [sys.executable, "-m", "hookstream", "subscriptions", "list"],
        env={**env, "DATABASE_URL": migrated_database_url},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # no .hookstream/stack.env here
    )
    assert listed.returncode == 1
    assert listed.stderr.strip().startswith("error: HOOKSTREAM_SECRETS_KEYS is not set")
    assert len(listed.stderr.strip().splitlines()) == 1


async def test_a_fourth_active_secret_is_refused_until_the_oldest_expires(db: Database) -> None:
    store = SubscriptionStore(db, KEYRING)
    sub = await store.add(name="a", url="https://a.example/", event_types=["*"])
    await store.rotate_secret(sub.id)
    await store.rotate_secret(sub.id)
    assert len((await store.get(sub.id)).signing_secrets()) == 3
    with pytest.raises(TooManySecrets, match=r"already has 3 active secrets; the oldest expires at \d{4}-") as caught:
        await store.rotate_secret(sub.id)
    assert timedelta(hours=23) < caught.value.retry_after < timedelta(hours=24, minutes=1)
    assert len((await store.get(sub.id)).signing_secrets()) == 3
    await store.rotate_secret(sub.id, grace=timedelta(0))  # an operator may end the grace period at once
    assert len((await store.get(sub.id)).signing_secrets()) == 1

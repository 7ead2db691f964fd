"""Partner subscriptions: where outbound webhooks go, which event types, signed with which secrets.

Kept in Postgres and managed through this module only (the CLI, the delivery service, the admin). Secrets
are Standard Webhooks ``whsec_`` keys; rotating adds a new one and lets the old one expire after
a grace period, and both sign meanwhile so partners can switch without a gap (at most
``MAX_ACTIVE_SECRETS`` at once).

Secrets and custom headers (often the partner's Authorization) are stored sealed (``hookstream.secretbox``:
AES-256-GCM, the row and column as associated data) in ``secrets_sealed``/``headers_sealed``. Rows written
before migration 0015 hold them as plain JSON in ``secrets``/``headers``: both forms are read, and every
write of a row (add, update, rotate-secret) and ``hookstream secrets rotate`` (``reseal``) seal them.
"""

from __future__ import annotations

import base64
import builtins
import json
import re
import secrets as _random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from hookstream import redact
from hookstream.db import Database
from hookstream.errors import ConfigurationError, SealedValueUnreadable
from hookstream.secretbox import SETTING, Keyring

ContentType = Literal["json", "xml"]
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_EVENT_PATTERN = re.compile(r"^(\*|[a-z_]+(\.([a-z_]+|\*))*)$")
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "webhook-id", "webhook-timestamp", "webhook-signature"}
)


MIN_RATE_PER_S, MAX_RATE_PER_S = 0.01, 100_000.0  # one request in 100 s .. more than any endpoint takes
# Every active secret signs every delivery and is kept for its grace period: a partner rotating without
# limit would make each request carry ever more signatures.
MAX_ACTIVE_SECRETS = 3


class InvalidSubscription(ConfigurationError):
    """A subscription setting is wrong; the message says which and how to fix it."""


class UnknownSubscription(ConfigurationError):
    pass


class TooManySecrets(ConfigurationError):
    """A rotation would leave more than ``MAX_ACTIVE_SECRETS`` signing; ``retry_after`` is how long until
    the oldest of them expires."""

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Secret:
    value: str
    created_at: datetime
    expires_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Subscription:
    id: str
    name: str
    url: str
    event_types: list[str]
    secrets: list[Secret]
    content_type: ContentType = "json"
    headers: dict[str, str] = field(default_factory=dict)
    timeout_ms: int = 10_000
    rate_limit_per_s: float | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    failing_since: datetime | None = None  # every delivery has failed since then (cleared by a success)

    def shown(self) -> dict[str, Any]:
        """As the admin API shows it and the audit log keeps it (whoever made the change): never its
        secrets (only how many are active), its custom headers' values or credentials in its URL."""
        return {
            "id": self.id,
            "name": self.name,
            "url": redact.url(self.url),
            "event_types": self.event_types,
            "content_type": self.content_type,
            "headers": redact.header_values(self.headers),
            "timeout_ms": self.timeout_ms,
            "rate_limit_per_s": self.rate_limit_per_s,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "secrets": len(self.secrets),
        }

    def wants(self, event_type: str) -> bool:
        return self.enabled and any(matches(pattern, event_type) for pattern in self.event_types)

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """Every secret still in force, newest first: during rotation both sign."""
        now = now or datetime.now(UTC)
        return [s.value for s in sorted(self.secrets, key=lambda s: s.created_at, reverse=True) if s.active(now)]


def matches(pattern: str, event_type: str) -> bool:
    """``order.*`` matches ``order.paid``; ``*`` matches everything; otherwise exact."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def new_secret() -> str:
    return "whsec_" + base64.b64encode(_random.token_bytes(24)).decode()


def validate(
    *,
    url: str,
    event_types: list[str],
    content_type: str = "json",
    headers: dict[str, str] | None = None,
    timeout_ms: int = 10_000,
    rate_limit_per_s: float | None = None,
) -> None:
    if not url.isprintable():  # control characters, NUL, lone surrogates
        raise InvalidSubscription(f"url {url!r} has control characters; give a plain http(s) URL")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. an unbalanced [ of an IPv6 literal
        raise InvalidSubscription(f"url {url!r} is not a URL ({exc}); e.g. https://partner.example/hooks") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidSubscription(f"url {url!r} must be an absolute http(s) URL, e.g. https://partner.example/hooks")
    if not event_types:
        raise InvalidSubscription("give at least one event type, e.g. order.paid or order.*")
    for pattern in event_types:
        if not _EVENT_PATTERN.match(pattern):
            raise InvalidSubscription(f"event type {pattern!r} is not like order.paid, order.* or *")
    if content_type not in ("json", "xml"):
        raise InvalidSubscription(f"content type {content_type!r} must be json or xml")
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name):
            raise InvalidSubscription(f"header name {name!r} is not an HTTP token (letters, digits, -_.!#$%&'*+^`|~)")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidSubscription(f"header {name!r} is set by hookstream and cannot be overridden")
        if not all(c == "\t" or (c.isprintable() and c.isascii()) for c in value):
            raise InvalidSubscription(f"header {name!r}: its value must be printable ASCII")
    if not 100 <= timeout_ms <= 60_000:
        raise InvalidSubscription(f"timeout {timeout_ms} ms must be between 100 and 60000")
    if rate_limit_per_s is not None and not MIN_RATE_PER_S <= rate_limit_per_s <= MAX_RATE_PER_S:
        raise InvalidSubscription(
            f"a rate limit must be between {MIN_RATE_PER_S:g} and {MAX_RATE_PER_S:g} requests per second"
        )


def _secrets_json(secrets: list[Secret]) -> str:
    return json.dumps(
        [
            {
                "value": s.value,
                "created_at": s.created_at.isoformat(),
                "expires_at": s.expires_at.isoformat() if s.expires_at else None,
            }
            for s in secrets
        ]
    )


def _where(column: str, subscription_id: str) -> str:
    """What a sealed value is bound to (its associated data): a copy in another row or column does not open."""
    return f"subscriptions.{column}:{subscription_id}"


def _unknown(subscription_id: str) -> UnknownSubscription:
    return UnknownSubscription(f"no subscription {subscription_id!r}; `hookstream subscriptions list` shows them")


_SELECT = """SELECT id, name, url, event_types, secrets, secrets_sealed, content_type, headers, headers_sealed,
                   timeout_ms, rate_limit_per_s, enabled, disabled_reason, failing_since
              FROM subscriptions"""
# Plain text (written before migration 0015) or sealed with another key than the newest (%s twice).
_STALE = """(secrets_sealed IS NULL OR headers_sealed IS NULL
              OR split_part(secrets_sealed, ':', 2) <> %s OR split_part(headers_sealed, ':', 2) <> %s)"""
_RESEAL = """UPDATE subscriptions SET secrets = NULL, secrets_sealed = %s, headers = NULL, headers_sealed = %s
              WHERE id = %s"""
_CANARY = "hookstream secrets canary"
_OPENED_MAX = 10_000  # values opened and kept (the delivery re-reads every subscription every few seconds)


class SubscriptionStore:
    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring
        self._opened: dict[tuple[str, str], Any] = {}

    def _open_json(self, envelope: str, where: str) -> Any:
        found = self._opened.get((where, envelope))
        if found is None:
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            found = self._opened[(where, envelope)] = json.loads(self.keyring.open(envelope, where))
        return found

    def _subscription(self, row: dict[str, Any]) -> Subscription:
        sub_id = row["id"]
        if row["secrets_sealed"] is not None:
            secrets = self._open_json(row["secrets_sealed"], _where("secrets", sub_id))
        else:
            secrets = row["secrets"]  # a row from before migration 0015, not written since
        if row["headers_sealed"] is not None:
            headers = self._open_json(row["headers_sealed"], _where("headers", sub_id))
        else:
            headers = row["headers"]
        return Subscription(
            id=sub_id,
            name=row["name"],
            url=row["url"],
            event_types=list(row["event_types"]),
            secrets=[
                Secret(
                    s["value"],
                    datetime.fromisoformat(s["created_at"]),
                    datetime.fromisoformat(s["expires_at"]) if s["expires_at"] else None,
                )
                for s in secrets
            ],
            content_type=row["content_type"],
            headers=dict(headers),
            timeout_ms=row["timeout_ms"],
            rate_limit_per_s=row["rate_limit_per_s"],
            enabled=row["enabled"],
            disabled_reason=row["disabled_reason"],
            failing_since=row["failing_since"],
        )

    def _seal(self, subscription_id: str, secrets: list[Secret], headers: dict[str, str]) -> tuple[str, str]:
        """(secrets_sealed, headers_sealed) under the newest key."""
        return (
            self.keyring.seal(_secrets_json(secrets), _where("secrets", subscription_id)),
            self.keyring.seal(json.dumps(headers), _where("headers", subscription_id)),
        )

    async def add(
        self,
        *,
        name: str,
        url: str,
        event_types: list[str],
        content_type: ContentType = "json",
        headers: dict[str, str] | None = None,
        timeout_ms: int = 10_000,
        rate_limit_per_s: float | None = None,
        secret: str | None = None,
    ) -> Subscription:
        validate(
            url=url,
            event_types=event_types,
            content_type=content_type,
            headers=headers,
            timeout_ms=timeout_ms,
            rate_limit_per_s=rate_limit_per_s,
        )
        if secret is not None and not secret.startswith("whsec_"):
            raise InvalidSubscription("a secret must be a Standard Webhooks key starting with whsec_")
        now = datetime.now(UTC)
        subscription_id = f"sub_{uuid.uuid4().hex[:16]}"
        secrets_sealed, headers_sealed = self._seal(
            subscription_id, [Secret(secret or new_secret(), now)], headers or {}
        )
        async with self.db.connection() as conn:
            await conn.execute(
                """INSERT INTO subscriptions (id, name, url, event_types, secrets_sealed, content_type,
                       headers_sealed, timeout_ms, rate_limit_per_s, enabled, disabled_reason)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, true, NULL)""",
                (
                    subscription_id,
                    name,
                    url,
                    event_types,
                    secrets_sealed,
                    content_type,
                    headers_sealed,
                    timeout_ms,
                    rate_limit_per_s,
                ),
            )
        return await self.get(subscription_id)

    async def get(self, subscription_id: str) -> Subscription:
        async with self.db.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE id = %s", (subscription_id,))
            row = await cur.fetchone()
        if row is None:
            raise _unknown(subscription_id)
        return self._subscription(row)

    async def list(self, *, enabled_only: bool = False) -> list[Subscription]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                _SELECT + " WHERE enabled OR NOT %s ORDER BY created_at",
                (enabled_only,),
            )
            return [self._subscription(r) for r in await cur.fetchall()]

    async def update(self, subscription_id: str, **changes: Any) -> Subscription:
        allowed = {"name", "url", "event_types", "content_type", "headers", "timeout_ms", "rate_limit_per_s"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidSubscription(f"cannot update {sorted(unknown)}; updatable: {sorted(allowed)}")
        # The row is locked from read to write: its secrets are written back (sealed under the newest
        # key), and a rotation meanwhile must not be undone.
        async with self.db.transaction() as conn:
            cur = await conn.execute(_SELECT + " WHERE id = %s FOR UPDATE", (subscription_id,))
            row = await cur.fetchone()
            if row is None:
                raise _unknown(subscription_id)
            current = self._subscription(row)
            merged = {
                "url": changes.get("url", current.url),
                "event_types": changes.get("event_types", current.event_types),
                "content_type": changes.get("content_type", current.content_type),
                "headers": changes.get("headers", current.headers),
                "timeout_ms": changes.get("timeout_ms", current.timeout_ms),
                "rate_limit_per_s": changes.get("rate_limit_per_s", current.rate_limit_per_s),
            }
            validate(**merged)
            secrets_sealed, headers_sealed = self._seal(subscription_id, current.secrets, merged["headers"])
            await conn.execute(
                """UPDATE subscriptions SET name = %s, url = %s, event_types = %s, content_type = %s,
                       secrets = NULL, secrets_sealed = %s, headers = NULL, headers_sealed = %s,
                       timeout_ms = %s, rate_limit_per_s = %s, updated_at = now() WHERE id = %s""",
                (
                    changes.get("name", current.name),
                    merged["url"],
                    merged["event_types"],
                    merged["content_type"],
                    secrets_sealed,
                    headers_sealed,
                    merged["timeout_ms"],
                    merged["rate_limit_per_s"],
                    subscription_id,
                ),
            )
        return await self.get(subscription_id)

    async def set_enabled(self, subscription_id: str, enabled: bool, reason: str | None = None) -> Subscription:
        await self.get(subscription_id)
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE subscriptions SET enabled = %s, disabled_reason = %s, updated_at = now() WHERE id = %s",
                (enabled, None if enabled else (reason or "disabled by an operator"), subscription_id),
            )
        return await self.get(subscription_id)

    async def disable_if_enabled(self, subscription_id: str, reason: str) -> bool:
        """Disable an enabled subscription; False if it was disabled already (so only one caller alerts)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """UPDATE subscriptions SET enabled = false, disabled_reason = %s, updated_at = now()
                   WHERE id = %s AND enabled""",
                (reason, subscription_id),
            )
            return cur.rowcount == 1

    async def mark_failing(self, subscription_id: str) -> datetime | None:
        """Start the endpoint's failure streak unless one runs; return since when it has been failing."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """UPDATE subscriptions SET failing_since = coalesce(failing_since, now())
                   WHERE id = %s RETURNING failing_since""",
                (subscription_id,),
            )
            row = await cur.fetchone()
        since = row["failing_since"] if row else None
        return since if isinstance(since, datetime) else None

    async def clear_failing(self, subscription_id: str) -> None:
        """The endpoint answered: its failure streak (if any) is over."""
        async with self.db.connection() as conn:
            await conn.execute(
                "UPDATE subscriptions SET failing_since = NULL WHERE id = %s AND failing_since IS NOT NULL",
                (subscription_id,),
            )

    async def rotate_secret(self, subscription_id: str, *, grace: timedelta = timedelta(hours=24)) -> str:
        """Add a new secret; the current ones stay valid for ``grace`` (both sign meanwhile). Returns the new one.

        Refused (``TooManySecrets``) when ``MAX_ACTIVE_SECRETS`` would still be signing after it."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(_SELECT + " WHERE id = %s FOR UPDATE", (subscription_id,))
            row = await cur.fetchone()
            if row is None:
                raise UnknownSubscription(f"no subscription {subscription_id!r}")
            now = datetime.now(UTC)
            current = self._subscription(row)
            kept = [
                Secret(s.value, s.created_at, min(s.expires_at or now + grace, now + grace))
                for s in current.secrets
                if s.active(now)
            ]
            signing = [s for s in kept if s.active(now)]
            if len(signing) >= MAX_ACTIVE_SECRETS:
                first = min(s.expires_at or now + grace for s in signing)
                raise TooManySecrets(
                    f"subscription {subscription_id!r} already has {len(signing)} active secrets; the oldest"
                    f" expires at {first.isoformat(timespec='seconds')}: rotate again after that",
                    retry_after=first - now,
                )
            fresh = new_secret()
            secrets_sealed, headers_sealed = self._seal(subscription_id, [*kept, Secret(fresh, now)], current.headers)
            await conn.execute(
                """UPDATE subscriptions SET secrets = NULL, secrets_sealed = %s, headers = NULL, headers_sealed = %s,
                       updated_at = now() WHERE id = %s""",
                (secrets_sealed, headers_sealed, subscription_id),
            )
        return fresh

    async def stale(self) -> int:
        """How many subscriptions are plain text or sealed with an older key than the newest."""
        primary = self.keyring.primary
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM subscriptions WHERE " + _STALE,  # noqa: S608 - constants only
                (primary, primary),
            )
            row = cast(dict[str, Any] | None, await cur.fetchone())
        return int(row["n"]) if row else 0

    async def reseal(self, *, after: str = "", limit: int = 100) -> builtins.list[str]:
        """Seal under the newest key up to ``limit`` stale subscriptions with ids after ``after``, in one
        transaction (each row locked, so a concurrent write is neither lost nor undone); their ids, in order.

        What ``hookstream secrets rotate`` runs batch after batch: idempotent, and safe while services run."""
        primary = self.keyring.primary
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                _SELECT + " WHERE id > %s AND " + _STALE + " ORDER BY id LIMIT %s FOR UPDATE",
                (after, primary, primary, limit),
            )
            found = [self._subscription(row) for row in await cur.fetchall()]
            if found:
                async with conn.cursor() as writes:
                    await writes.executemany(
                        _RESEAL, [(*self._seal(sub.id, sub.secrets, sub.headers), sub.id) for sub in found]
                    )
        return [sub.id for sub in found]

    async def key_usage(self) -> dict[str, int]:
        """How many subscriptions have a value sealed with each key id ("" for plain text, not yet sealed)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT key_id, count(DISTINCT id) AS n FROM (
                       SELECT id, coalesce(split_part(secrets_sealed, ':', 2), '') AS key_id FROM subscriptions
                       UNION ALL
                       SELECT id, coalesce(split_part(headers_sealed, ':', 2), '') FROM subscriptions
                   ) AS used GROUP BY key_id ORDER BY key_id"""
            )
            return {row["key_id"]: int(row["n"]) for row in cast(builtins.list[dict[str, Any]], await cur.fetchall())}

    async def check_keys(self) -> None:
        """The configured keys open what is stored, or one line naming the key that is missing or wrong.

        One value per key id in use is opened, and each key's canary (the newest key leaves one when it
        has none), so services given other bytes under the same id stop at start, even on an empty table."""
        keyring = self.keyring
        keyring.require()
        async with self.db.connection() as conn:
            cur = await conn.execute(
                """SELECT DISTINCT ON (key_id) key_id, id, col, sealed FROM (
                       SELECT split_part(secrets_sealed, ':', 2) AS key_id, id, 'secrets' AS col,
                              secrets_sealed AS sealed FROM subscriptions WHERE secrets_sealed IS NOT NULL
                       UNION ALL
                       SELECT split_part(headers_sealed, ':', 2), id, 'headers', headers_sealed
                         FROM subscriptions WHERE headers_sealed IS NOT NULL
                   ) AS sealed_values ORDER BY key_id, id"""
            )
            rows = cast(builtins.list[dict[str, Any]], await cur.fetchall())
            samples = [(r["key_id"], r["sealed"], _where(r["col"], r["id"])) for r in rows]
            await conn.execute(
                "INSERT INTO secrets_canaries (key_id, sealed) VALUES (%s, %s) ON CONFLICT (key_id) DO NOTHING",
                (keyring.primary, keyring.seal(_CANARY, _canary_where(keyring.primary))),
            )
            cur = await conn.execute(
                "SELECT key_id, sealed FROM secrets_canaries WHERE key_id = ANY(%s) ORDER BY key_id",
                (list(keyring.ids),),
            )
            rows = cast(builtins.list[dict[str, Any]], await cur.fetchall())
            canaries = [(r["key_id"], r["sealed"], _canary_where(r["key_id"])) for r in rows]
        for key_id, sealed, where in [*samples, *canaries]:
            try:
                keyring.open(sealed, where)
            except SealedValueUnreadable:
                raise SealedValueUnreadable(
                    f"key {key_id!r} in {SETTING} is not the key {where} was sealed with (or that value was"
                    " altered): give every service the same keys, newest first"
                ) from None


def _canary_where(key_id: str) -> str:
    return f"secrets_canaries.sealed:{key_id}"


class KeyCheck:
    """A part of every service that reads subscriptions, started right after its database: the configured
    keys must open what is stored (``SubscriptionStore.check_keys``), or the service does not start."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store

    async def start(self) -> None:
        await self.store.check_keys()

    async def stop(self) -> None:
        return None

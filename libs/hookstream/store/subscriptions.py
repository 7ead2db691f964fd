"""Partner subscriptions: where outbound webhooks go, which event types, signed with which secrets.

Kept in Postgres and managed through this module only (the CLI, the delivery service, the admin). Secrets
are Standard Webhooks ``whsec_`` keys; rotating adds a new one and lets the old one expire after
a grace period, and both sign meanwhile so partners can switch without a gap.
"""

from __future__ import annotations

import base64
import json
import re
import secrets as _random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from hookstream.db import Database
from hookstream.errors import ConfigurationError

ContentType = Literal["json", "xml"]
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_EVENT_PATTERN = re.compile(r"^(\*|[a-z_]+(\.([a-z_]+|\*))*)$")
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "webhook-id", "webhook-timestamp", "webhook-signature"}
)


MIN_RATE_PER_S, MAX_RATE_PER_S = 0.01, 100_000.0  # one request in 100 s .. more than any endpoint takes


class InvalidSubscription(ConfigurationError):
    """A subscription setting is wrong; the message says which and how to fix it."""


class UnknownSubscription(ConfigurationError):
    pass


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


def _from_row(row: dict[str, Any]) -> Subscription:
    return Subscription(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        event_types=list(row["event_types"]),
        secrets=[
            Secret(
                s["value"],
                datetime.fromisoformat(s["created_at"]),
                datetime.fromisoformat(s["expires_at"]) if s["expires_at"] else None,
            )
            for s in row["secrets"]
        ],
        content_type=row["content_type"],
        headers=dict(row["headers"]),
        timeout_ms=row["timeout_ms"],
        rate_limit_per_s=row["rate_limit_per_s"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
    )


_SELECT = """SELECT id, name, url, event_types, secrets, content_type, headers, timeout_ms,
                   rate_limit_per_s, enabled, disabled_reason, failing_since
              FROM subscriptions"""


class SubscriptionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

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
        async with self.db.connection() as conn:
            await conn.execute(
                """INSERT INTO subscriptions (id, name, url, event_types, secrets, content_type, headers,
                       timeout_ms, rate_limit_per_s, enabled, disabled_reason)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, true, NULL)""",
                (
                    subscription_id,
                    name,
                    url,
                    event_types,
                    _secrets_json([Secret(secret or new_secret(), now)]),
                    content_type,
                    json.dumps(headers or {}),
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
            raise UnknownSubscription(
                f"no subscription {subscription_id!r}; `hookstream subscriptions list` shows them"
            )
        return _from_row(row)

    async def list(self, *, enabled_only: bool = False) -> list[Subscription]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                _SELECT + " WHERE enabled OR NOT %s ORDER BY created_at",
                (enabled_only,),
            )
            return [_from_row(r) for r in await cur.fetchall()]

    async def update(self, subscription_id: str, **changes: Any) -> Subscription:
        allowed = {"name", "url", "event_types", "content_type", "headers", "timeout_ms", "rate_limit_per_s"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidSubscription(f"cannot update {sorted(unknown)}; updatable: {sorted(allowed)}")
        current = await self.get(subscription_id)
        merged = {
            "url": changes.get("url", current.url),
            "event_types": changes.get("event_types", current.event_types),
            "content_type": changes.get("content_type", current.content_type),
            "headers": changes.get("headers", current.headers),
            "timeout_ms": changes.get("timeout_ms", current.timeout_ms),
            "rate_limit_per_s": changes.get("rate_limit_per_s", current.rate_limit_per_s),
        }
        validate(**merged)
        async with self.db.connection() as conn:
            await conn.execute(
                """UPDATE subscriptions SET name = %s, url = %s, event_types = %s, content_type = %s, headers = %s,
                       timeout_ms = %s, rate_limit_per_s = %s, updated_at = now() WHERE id = %s""",
                (
                    changes.get("name", current.name),
                    merged["url"],
                    merged["event_types"],
                    merged["content_type"],
                    json.dumps(merged["headers"]),
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
        """Add a new secret; the current ones stay valid for ``grace`` (both sign meanwhile). Returns the new one."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(_SELECT + " WHERE id = %s FOR UPDATE", (subscription_id,))
            row = await cur.fetchone()
            if row is None:
                raise UnknownSubscription(f"no subscription {subscription_id!r}")
            now = datetime.now(UTC)
            current = _from_row(row)
            kept = [
                Secret(s.value, s.created_at, min(s.expires_at or now + grace, now + grace))
                for s in current.secrets
                if s.active(now)
            ]
            fresh = new_secret()
            await conn.execute(
                "UPDATE subscriptions SET secrets = %s, updated_at = now() WHERE id = %s",
                (_secrets_json([*kept, Secret(fresh, now)]), subscription_id),
            )
        return fresh

"""Bearer tokens for the admin API: created and revoked from the CLI, only their SHA-256 kept.

A token is ``hst_`` and 32 random bytes (URL-safe base64), shown once when it is created. Scopes
are ordered, ``read`` < ``write`` < ``admin``; a ``partner`` token belongs to one subscription and
sees and changes only that endpoint's data. A plain hash (not a password hash) is enough because
a token is random and long: nothing to guess, and a lookup per request stays cheap.
"""

from __future__ import annotations

import hashlib
import secrets as _random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hookstream.db import Database
from hookstream.errors import ConfigurationError

Scope = Literal["read", "write", "admin", "partner"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin", "partner")
_RANK = {"read": 1, "write": 2, "admin": 3}
PREFIX = "hst_"


class InvalidToken(ConfigurationError):
    """A token request is wrong (scope, subscription); the message says how to fix it."""


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scope: Scope
    subscription_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None = None

    def allows(self, needed: Literal["read", "write", "admin"]) -> bool:
        """Whether an operator token's scope covers ``needed`` (partner tokens are checked per resource)."""
        return self.scope != "partner" and _RANK[self.scope] >= _RANK[needed]

    @property
    def actor(self) -> str:
        return f"{self.id}:{self.name}"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


_COLUMNS = "id, name, scope, subscription_id, created_at, last_used_at, revoked_at, expires_at"


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, name: str, scope: str, *, subscription_id: str | None = None, expires_at: datetime | None = None
    ) -> tuple[Token, str]:
        """A new token and its secret, which is not stored and cannot be shown again; after ``expires_at``
        (if given) it answers as a revoked one would."""
        if scope not in SCOPES:
            raise InvalidToken(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if (scope == "partner") != (subscription_id is not None):
            raise InvalidToken(
                "a partner token needs --subscription ID (and only a partner token takes one)"
                if scope == "partner"
                else "--subscription is for partner tokens: use --scope partner"
            )
        if not name.strip():
            raise InvalidToken("give the token a name saying who or what uses it")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidToken("the expiry is in the past: give a time to come (e.g. --expires-in 30d)")
        secret = PREFIX + _random.token_urlsafe(32)
        token_id = "tok_" + _random.token_hex(6)
        async with self.db.connection() as conn:
            if subscription_id is not None:
                cur = await conn.execute("SELECT 1 FROM subscriptions WHERE id = %s", (subscription_id,))
                if await cur.fetchone() is None:
                    raise InvalidToken(
                        f"no subscription {subscription_id!r}; `hookstream subscriptions list` shows them"
                    )
            cur = await conn.execute(
                f"""INSERT INTO api_tokens (id, name, scope, subscription_id, token_hash, expires_at)
                    VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",  # noqa: S608 - fixed columns
                (token_id, name.strip(), scope, subscription_id, _digest(secret), expires_at),
            )
            row = await cur.fetchone()
        assert row is not None
        return Token(**row), secret  # type: ignore[arg-type]

    async def list(self, *, include_revoked: bool = False) -> list[Token]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM api_tokens WHERE revoked_at IS NULL OR %s ORDER BY created_at",  # noqa: S608
                (include_revoked,),
            )
            return [Token(**row) for row in await cur.fetchall()]  # type: ignore[arg-type]

    async def revoke(self, token_id: str) -> Token:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
                    WHERE id = %s RETURNING {_COLUMNS}""",  # noqa: S608 - fixed columns
                (token_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise InvalidToken(f"no token {token_id!r}; `hookstream tokens list` shows them")
        return Token(**row)  # type: ignore[arg-type]

    async def authenticate(self, secret: str) -> Token | None:
        """The live token with this secret, or None (unknown, malformed, revoked or expired)."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        async with self.db.connection() as conn:
            cur = await conn.execute(
                f"""UPDATE api_tokens SET last_used_at = now()
                    WHERE token_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                    RETURNING {_COLUMNS}""",  # noqa: S608
                (_digest(secret),),
            )
            row = await cur.fetchone()
        return None if row is None else Token(**row)  # type: ignore[arg-type]

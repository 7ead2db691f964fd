"""Who is asking: the bearer token of a request, and what its scope lets it see and do.

No token or an unknown one → 401; an operator token below the scope a route needs → 403; a partner
token asking for another subscription's data → 404, as if it did not exist (never a hint that it does).
"""

from __future__ import annotations

from typing import Literal

from hookstream.store.tokens import Token, TokenStore
from hookstream_services.admin.errors import ApiError
from starlette.requests import Request

Needed = Literal["read", "write", "admin"]


async def authenticate(request: Request, tokens: TokenStore) -> Token:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <token>'; `hookstream tokens create` makes one",
            headers={"WWW-Authenticate": 'Bearer realm="hookstream"'},
        )
    token = await tokens.authenticate(secret.strip())
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "the token is unknown or revoked; `hookstream tokens list` shows the live ones",
            headers={"WWW-Authenticate": 'Bearer realm="hookstream", error="invalid_token"'},
        )
    return token


def require(token: Token, needed: Needed, *, partner_may: bool = False) -> None:
    """Operator tokens need ``needed`` or more; partner tokens pass only where ``partner_may`` (the
    handler then limits them to their own subscription)."""
    if token.scope == "partner":
        if not partner_may:
            raise ApiError(403, "forbidden", "a partner token cannot do this; it sees only its own endpoint")
        return
    if not token.allows(needed):
        raise ApiError(403, "forbidden", f"this needs a token with scope {needed!r}; this one has {token.scope!r}")


def own(token: Token, subscription_id: str | None, what: str) -> None:
    """A partner token reaches only its own subscription's resources; anything else is not found."""
    if token.scope == "partner" and subscription_id != token.subscription_id:
        raise ApiError(404, "not_found", f"no {what} with that id")

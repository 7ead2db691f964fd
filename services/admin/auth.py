"""Who is asking: the bearer token of a request, and what its scope lets it see and do.

No token or an unknown one → 401; an operator token below the scope a route needs → 403; a partner
token asking for another subscription's data → 404, as if it did not exist (never a hint that it does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from hookstream.sensors import Sensor
from hookstream.store.tokens import Token, TokenStore
from hookstream_services.admin.errors import ApiError
from starlette.requests import Request

Needed = Literal["read", "write", "admin"]
log = logging.getLogger("hookstream.admin")


class Refusals:
    """Every refused token is counted through the sensors; the log says so at most once a minute per
    reason, with how many there were, so that guessing tokens cannot flood it."""

    def __init__(self, sensors: Sensor, *, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sensors = sensors
        self.window_s = window_s
        self.clock = clock
        self._told: dict[str, tuple[float, int]] = {}  # reason → (last logged, refused since)

    def __call__(self, reason: str, request: Request) -> None:
        self.sensors.on_auth_refused("admin", reason)
        now = self.clock()
        told_at, since = self._told.get(reason, (None, 0))
        if told_at is not None and now - told_at < self.window_s:
            self._told[reason] = (told_at, since + 1)
            return
        self._told[reason] = (now, 0)
        client = request.client.host if request.client else "?"
        log.warning(
            "admin request refused for its token",
            extra={"reason": reason, "client": client, "path": request.url.path, "refused_before_unlogged": since},
        )


async def authenticate(request: Request, tokens: TokenStore, refused: Callable[[str, Request], None]) -> Token:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        refused("missing", request)
        raise ApiError(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <token>'; `hookstream tokens create` makes one",
            headers={"WWW-Authenticate": 'Bearer realm="hookstream"'},
        )
    token = await tokens.authenticate(secret.strip())
    if token is None:
        refused("unknown", request)  # unknown, revoked or expired: the store does not say which, nor do we
        raise ApiError(
            401,
            "unauthorized",
            "the token is unknown, revoked or expired; `hookstream tokens list` shows the live ones",
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

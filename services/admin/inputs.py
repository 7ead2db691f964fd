"""What the admin API accepts: request bodies as pydantic models, and the checks on query and body values.

Every refusal is an ``ApiError`` naming the field and what a valid value looks like.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from hookstream import jsonbody
from hookstream.http.outbound import ssrf
from hookstream.store.deliveries import DeliveryStatus
from hookstream.store.subscriptions import MAX_RATE_PER_S, MIN_RATE_PER_S
from hookstream_services.admin.errors import ApiError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

M = TypeVar("M", bound=BaseModel)


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] = Field(min_length=1)
    content_type: Literal["json", "xml"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_ms: int = Field(10_000, ge=100, le=60_000)
    rate_limit_per_s: float | None = Field(None, ge=MIN_RATE_PER_S, le=MAX_RATE_PER_S)


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, min_length=1, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1)
    content_type: Literal["json", "xml"] | None = None
    headers: dict[str, str] | None = None
    timeout_ms: int | None = Field(None, ge=100, le=60_000)
    rate_limit_per_s: float | None = Field(None, ge=MIN_RATE_PER_S, le=MAX_RATE_PER_S)


class Disable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("disabled by an operator", min_length=1, max_length=500)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_datetime: datetime
    dry_run: bool = False


class Recover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime
    include_skipped: bool = False


class Redrive(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positions: list[str] = Field(default_factory=list, description="partition:offset of each dead letter")
    event_ids: list[str] = Field(default_factory=list)
    all: bool = False
    include_redriven: bool = False


# Every admin body is a small JSON object (a subscription, a redrive selection): a token holder must not
# be able to make the admin buffer megabytes.
MAX_BODY_BYTES = 64 * 1024


async def read_bounded(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it is longer than ``limit`` (declared or sent)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body is {declared} bytes; at most {limit} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"the body is longer than the {limit} bytes accepted")
        chunks.append(chunk)
    return b"".join(chunks)


async def body(request: Request, model: type[M], *, empty_ok: bool = False) -> M:
    raw = await read_bounded(request)
    if not raw.strip() and empty_ok:
        return model()
    try:
        data = jsonbody.loads(raw)
    except jsonbody.InvalidJson as exc:
        raise ApiError(400, "bad_request", f"the body must be a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    bad = unstorable(data)
    if bad is not None:
        raise ApiError(422, "invalid", f"{bad or 'body'}: a NUL or an unpaired surrogate cannot be stored")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid", f"{field}: {first['msg']}") from None


def unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) PostgreSQL cannot store: NUL, or a lone UTF-16 surrogate."""
    if isinstance(value, str):
        return path if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if unstorable(key, path or "body") is not None:
                return path or "body"
            found = unstorable(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = unstorable(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def target(url: str | None, allow: frozenset[str]) -> None:
    """A URL whose host is an address the sender would refuse, in any form it is written, is refused when saved.

    A name is not: what it resolves to may change by the time it is sent, where it is checked again."""
    if url is None:
        return
    try:
        ssrf.target(url, allow)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"url: not a URL ({exc}); e.g. https://partner.example/hooks") from None
    except ssrf.UnsafeTarget as exc:
        raise ApiError(422, "invalid", f"url: {exc}") from None


def only_params(given: Any, allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ApiError(422, "invalid", f"unknown query parameter {unknown[0]!r}; known: {', '.join(sorted(allowed))}")


def delivery_status(value: str | None) -> DeliveryStatus | None:
    if value is None:
        return None
    try:
        return DeliveryStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in DeliveryStatus)
        raise ApiError(422, "invalid", f"status: must be one of {known}") from None


def query_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid", f"{name}: an ISO 8601 time, e.g. 2026-12-01T08:00:00Z") from None
    return aware(parsed, name)


def aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ApiError(422, "invalid", f"{name}: give a time zone, e.g. 2026-12-01T08:00:00Z")
    return value


def page_limit(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise ApiError(422, "invalid", "limit: a whole number from 1 to 500")
    return int(value)


def position(value: str | None, name: str) -> tuple[int, int] | None:
    """A dead letter's ``partition:offset``, as the API shows it."""
    if value is None:
        return None
    partition, sep, offset = value.partition(":")
    if not (sep and partition.isdigit() and offset.isdigit()) or len(value) > 40:
        raise ApiError(422, "invalid", f"{name}: a position like 0:1234 (partition:offset), as a page's next says")
    return int(partition), int(offset)

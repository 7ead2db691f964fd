"""An external system over HTTP (CRM, warehouse, ERP, risk platform, SMS provider).

One pooled aiohttp session per system. Every call carries the ``Idempotency-Key`` of the effect
it makes, so a repeated call (a retry, a crash before the step was recorded) does not repeat the
effect at a system that honours it. What an answer means for the event is decided here, once:

- 2xx: done; the JSON body (or ``{}``) is the result;
- 408, 425, 429, 5xx, a timeout, a refused or dropped connection: ``SystemUnavailable``
  (retriable; ``Retry-After`` honoured);
- any other 4xx: ``SystemRejected`` (permanent: retrying the same request cannot succeed), with
  the system's answer.

The URL is the operator's configuration, not a partner's, so no SSRF guard applies here.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from hookstream import tracing
from hookstream.errors import ConfigurationError, PermanentError, RetriableError
from hookstream.http.retry_after import retry_after_ms
from hookstream.lifecycle import Lifecycle

EXCERPT_CHARS = 500
RETRIABLE_STATUS = frozenset({408, 425, 429})


class SystemApi(Protocol):
    """What a workflow's handler needs of a system: ``HttpConnector``, or a fake in unit tests."""

    async def call(self, method: str, path: str, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]: ...


class SystemUnavailable(RetriableError):
    """The system did not answer, or answered that it cannot now; the call is retried later."""


class SystemRejected(PermanentError):
    """The system refused the request for good (a 4xx); fix the data or the system, then redrive."""

    def __init__(self, message: str, *, status: int, answer: str) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


@dataclass(frozen=True)
class Endpoint:
    """Where a system is and how to call it. ``setting`` names the settings prefix for error messages."""

    system: str
    url: str
    auth_header: str | None = None  # "Authorization: Bearer ..."
    timeout_ms: int = 5_000
    setting: str = ""

    def check(self) -> None:
        """A one-line ConfigurationError naming the setting to fix."""
        if not self.url:
            raise ConfigurationError(
                f"{self.setting}URL is not set: give the {self.system} system's http(s) base URL"
                " (the sandbox, `hookstream run sandbox`, serves one at http://127.0.0.1:9500/" + self.system + ")"
            )
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{self.setting}URL must be the {self.system} system's http(s) base URL, not {self.url!r}"
            )
        if self.auth_header is not None and ":" not in self.auth_header:
            raise ConfigurationError(
                f"{self.setting}AUTH_HEADER must look like 'Authorization: Bearer <token>', not {self.auth_header!r}"
            )
        if self.timeout_ms <= 0:
            raise ConfigurationError(f"{self.setting}TIMEOUT_MS must be positive, not {self.timeout_ms}")

    def headers(self) -> dict[str, str]:
        if self.auth_header is None:
            return {}
        name, _, value = self.auth_header.partition(":")
        return {name.strip(): value.strip()}


class HttpConnector(Lifecycle):
    def __init__(self, endpoint: Endpoint) -> None:
        """The endpoint is checked at ``start()``: ``hookstream setup`` builds services without their systems' URLs."""
        self.endpoint = endpoint
        self.system = endpoint.system
        self._base = endpoint.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.endpoint.check()
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.endpoint.headers())

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, path: str, body: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """``method`` ``path`` (below the base URL) with a JSON body; the JSON answer, or an error with its policy."""
        assert self._session is not None, "call `await connector.start()` first"
        what = f"{self.system} {method} {path}"
        timeout_ms = self.endpoint.timeout_ms
        url = self._base + path
        try:
            with tracing.calling(method, url) as call:
                headers = {"Idempotency-Key": idempotency_key, **call.headers}
                async with (
                    asyncio.timeout(timeout_ms / 1000),
                    self._session.request(method, url, json=body, headers=headers) as response,
                ):
                    text = await response.text(errors="replace")
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
                    call.answered(status)
        except TimeoutError:
            raise SystemUnavailable(f"{what}: no answer within {timeout_ms} ms") from None
        except aiohttp.ClientError as exc:
            raise SystemUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        excerpt = text[:EXCERPT_CHARS]
        if 200 <= status < 300:
            try:
                answer = json.loads(text) if text.strip() else {}
            except json.JSONDecodeError:
                raise SystemRejected(
                    f"{what} answered {status} with a body that is not JSON: {excerpt!r}", status=status, answer=excerpt
                ) from None
            return answer if isinstance(answer, dict) else {"answer": answer}
        if status in RETRIABLE_STATUS or status >= 500:
            raise SystemUnavailable(f"{what} answered {status}: {excerpt}", retry_after_ms=retry_after_ms(retry_after))
        raise SystemRejected(f"{what} answered {status}: {excerpt}", status=status, answer=excerpt)

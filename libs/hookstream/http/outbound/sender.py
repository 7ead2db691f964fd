"""One HTTP attempt to a partner endpoint, and what its answer means for the delivery.

aiohttp with one pooled session; TLS verification stays on. The SSRF guard sits in the
resolver, so the address the connection uses is the one that was checked; IP-literal hosts
(which aiohttp does not resolve) are checked before the request, in any form they are written, and
redirects are followed by hand (at most ``MAX_REDIRECTS``) so each hop is checked too. Last, the
connector checks the address each new connection reached, before anything is sent on it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler

from hookstream import redact, tracing
from hookstream.http.outbound.ssrf import UnsafeTarget, check_addresses, target
from hookstream.http.retry_after import retry_after_ms
from hookstream.store.deliveries import AttemptRecord

MAX_REDIRECTS = 3
EXCERPT_BYTES = 4096


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"  # 410: the partner removed the endpoint
    REJECTED = "rejected"  # another 4xx, or a target we refuse to call


@dataclass(frozen=True)
class Attempt(AttemptRecord):
    """What the delivery log keeps, plus what the answer means for the delivery."""

    verdict: Verdict = Verdict.RETRY
    retry_after_ms: int | None = None


class GuardedResolver(AbstractResolver):
    def __init__(self, allow: frozenset[str]) -> None:
        self.allow = allow
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        check_addresses(host, [r["host"] for r in results], self.allow)
        return results

    async def close(self) -> None:
        await self.inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """Checks the address a new connection reached, whatever parsing and resolving decided before."""

    def __init__(self, allow: frozenset[str], **options: Any) -> None:
        super().__init__(resolver=GuardedResolver(allow), **options)
        self.allow = allow

    async def _wrap_create_connection(
        self, *args: Any, req: aiohttp.ClientRequest, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        transport, protocol = await super()._wrap_create_connection(*args, req=req, **kwargs)
        peer = transport.get_extra_info("peername")
        try:
            if not peer:
                raise UnsafeTarget(f"{req.host}: the connection's peer address is unknown")
            check_addresses(req.host, [peer[0]], self.allow)
        except UnsafeTarget:
            transport.abort()
            raise
        return transport, protocol


class Sender:
    def __init__(
        self,
        *,
        allow_targets: frozenset[str] = frozenset(),
        retry_other_4xx: bool = False,
        max_connections: int = 1000,
        max_per_host: int = 100,
    ) -> None:
        self.allow_targets = allow_targets
        self.retry_other_4xx = retry_other_4xx
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = GuardedConnector(
                self.allow_targets,
                limit=self.max_connections,
                limit_per_host=self.max_per_host,
                ttl_dns_cache=10,  # answers are checked when resolved; re-resolve (and re-check) after 10 s
            )
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout_ms: int) -> Attempt:
        assert self._session is not None, "call `await sender.start()` first"
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return await self._post(url, body, headers, started)
        except UnsafeTarget as exc:
            return self._attempt(Verdict.REJECTED, None, started, error=str(exc))
        except TimeoutError:
            return self._attempt(Verdict.RETRY, None, started, error=f"no answer within {timeout_ms} ms")
        except aiohttp.ClientError as exc:
            unsafe = _unsafe_cause(exc)
            if unsafe is not None:
                return self._attempt(Verdict.REJECTED, None, started, error=str(unsafe))
            return self._attempt(Verdict.RETRY, None, started, error=f"{type(exc).__name__}: {exc}")

    async def _post(self, url: str, body: bytes, headers: dict[str, str], started: float) -> Attempt:
        assert self._session is not None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                checked = target(url, self.allow_targets)  # the very URL aiohttp is given: no second parse
            except ValueError as exc:
                raise aiohttp.InvalidUrlClientError(url, str(exc)) from None
            with tracing.calling("POST", url) as call:
                sent = {**headers, **call.headers} if call.headers else headers
                async with self._session.post(checked, data=body, headers=sent, allow_redirects=False) as response:
                    excerpt = (await response.content.read(EXCERPT_BYTES)).decode("utf-8", "replace")
                    status = response.status
                    call.answered(status)
                if status in (301, 302, 307, 308) and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                return self._classify(status, excerpt, response.headers, started)
        return self._attempt(Verdict.RETRY, None, started, error=f"more than {MAX_REDIRECTS} redirects")

    def _classify(self, status: int, excerpt: str, headers: Any, started: float) -> Attempt:
        if 200 <= status < 300:
            return self._attempt(Verdict.DELIVERED, status, started, excerpt=excerpt)
        if status == 410:
            return self._attempt(Verdict.GONE, status, started, excerpt=excerpt, error="410 Gone")
        if status in (408, 425, 429) or status >= 500 or (400 <= status < 500 and self.retry_other_4xx):
            wait = retry_after_ms(headers.get("Retry-After")) if status in (429, 503) else None
            return self._attempt(Verdict.RETRY, status, started, excerpt=excerpt, error=f"HTTP {status}", wait=wait)
        return self._attempt(Verdict.REJECTED, status, started, excerpt=excerpt, error=f"HTTP {status}")

    @staticmethod
    def _attempt(
        verdict: Verdict,
        status: int | None,
        started: float,
        *,
        excerpt: str | None = None,
        error: str | None = None,
        wait: int | None = None,
    ) -> Attempt:
        latency_ms = int((time.perf_counter() - started) * 1000)
        if error is not None:  # an error that quotes the URL must not put its credentials in the delivery log
            error = redact.urls_in(error)
        return Attempt(status, latency_ms, excerpt, error, verdict=verdict, retry_after_ms=wait)


def _unsafe_cause(exc: BaseException) -> UnsafeTarget | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UnsafeTarget):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def explain(attempt: AttemptRecord) -> str:
    """What an attempt's outcome means, in words a partner can act on (the portal and the test send);
    it takes what the delivery log keeps, so a stored attempt is explained the same way."""
    error = attempt.error or ""
    if attempt.status_code is not None and 200 <= attempt.status_code < 300:
        return f"delivered: the endpoint answered {attempt.status_code} in {attempt.latency_ms} ms"
    if attempt.status_code is None:
        lowered = error.lower()
        if "no answer within" in lowered:
            return f"timeout: {error}; the endpoint must answer within its timeout (answer first, work later)"
        dns = ("name or service not known", "nodename nor servname", "temporary failure in name resolution", "dns")
        if any(words in lowered for words in dns):
            return f"DNS: the endpoint's host name does not resolve ({error})"
        if "certificate" in lowered or "sslerror" in lowered or "handshake" in lowered:
            return f"TLS: the endpoint's certificate could not be verified ({error})"
        if "refused" in lowered and "connect" in lowered:
            return f"connection refused: nothing listens at the endpoint's address ({error})"
        if "private" in lowered or "loopback" in lowered or "not allowed" in lowered:
            return f"refused target: {error}"
        return f"no HTTP answer: {error}"
    if attempt.status_code == 410:
        return "410 Gone: the endpoint says it was removed; hookstream disables it"
    if attempt.status_code == 429 or attempt.status_code >= 500:
        return f"{attempt.status_code}: the endpoint failed or is busy; retried with backoff"
    answered = f"; it answered: {attempt.excerpt[:200]}" if attempt.excerpt else ""
    if attempt.status_code in (401, 403):
        return (
            f"{attempt.status_code}: the endpoint refused the request as unauthorized; check that it verifies the"
            f" signature with the subscription's current secret{answered}"
        )
    return f"{attempt.status_code}: the endpoint refused the request for good; check its answer{answered}"

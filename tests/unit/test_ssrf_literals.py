"""The SSRF guard against every way of writing an address in a URL, sent for real to a loopback server.

A form the guard misread would come back DELIVERED with the server's answer; every one must be REJECTED
before the server hears anything, whether it is the URL itself or a redirect hop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from hookstream.http.outbound import ssrf
from hookstream.http.outbound.sender import Sender, Verdict
from hookstream.http.outbound.ssrf import UnsafeTarget, literal_address
from hookstream_tools.devstack.process import free_port

LOOPBACK_V4, LOOPBACK_V6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
FORMS = {
    "[::1%251]": LOOPBACK_V6,
    "[::1%1]": LOOPBACK_V6,
    "[fe80::1%25eth0]": ipaddress.ip_address("fe80::1"),
    "[::ffff:127.0.0.1]": ipaddress.ip_address("::ffff:127.0.0.1"),
    "[::ffff:7f00:1]": ipaddress.ip_address("::ffff:127.0.0.1"),
    "2130706433": LOOPBACK_V4,
    "0177.0.0.1": LOOPBACK_V4,
    "0x7f.0.0.1": LOOPBACK_V4,
    "0x7f000001": LOOPBACK_V4,
    "127.1": LOOPBACK_V4,
    "127.0.0.1.": LOOPBACK_V4,
    "localhost.": LOOPBACK_V4,
}
REDIRECTOR = ipaddress.ip_address("127.0.0.2")  # stands in for a partner's public server


@dataclass
class Internal:
    """A server on 127.0.0.1 and ::1 that answers what a bypass would leak, and one that redirects to it."""

    port: int
    redirector: str
    heard: list[str] = field(default_factory=list)


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    port = free_port()
    found = Internal(port, f"http://{REDIRECTOR}:{port}/to")

    async def answer(request: web.Request) -> web.Response:
        found.heard.append(request.host)
        return web.Response(text="internal secret")

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["location"]})  # as given, not normalised

    app = web.Application()
    app.router.add_post("/", answer)
    app.router.add_post("/to", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    for host in (str(LOOPBACK_V4), str(LOOPBACK_V6), str(REDIRECTOR)):
        await web.TCPSite(runner, host, port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    sender = Sender()
    await sender.start()
    yield sender
    await sender.stop()


@pytest.fixture
def public_redirector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = ssrf.category
    monkeypatch.setattr(ssrf, "category", lambda address: None if address == REDIRECTOR else real(address))
    ssrf._parsed.cache_clear()  # verdicts are cached: none may outlive the rule they were made under
    yield
    ssrf._parsed.cache_clear()


@pytest.mark.parametrize(("host", "address"), FORMS.items())
def test_every_form_of_an_address_is_read_as_that_address(host: str, address: ssrf.IPAddress) -> None:
    bare = host.strip("[]")
    assert literal_address(bare) == address
    assert literal_address(bare.replace("%25", "%")) == address  # a raw zone separator too


@pytest.mark.parametrize("host", ["partner.example", "0x7f.partner.example", "127.0.0.1.nip.io", "xn--80ak6aa92e.com"])
def test_names_are_left_to_the_resolver(host: str) -> None:
    assert literal_address(host) is None


def test_a_host_with_a_colon_that_is_no_ipv6_address_is_refused() -> None:
    with pytest.raises(UnsafeTarget, match="neither an IP address nor a host name"):
        literal_address("zz::1")


@pytest.mark.parametrize("host", FORMS)
async def test_each_form_is_refused_before_anything_is_sent(host: str, internal: Internal, sender: Sender) -> None:
    attempt = await sender.post(f"http://{host}:{internal.port}/", b"{}", {}, timeout_ms=5000)
    assert (attempt.verdict, attempt.status_code, attempt.excerpt) == (Verdict.REJECTED, None, None), attempt
    assert "refused to prevent SSRF" in (attempt.error or "")
    assert internal.heard == []


@pytest.mark.parametrize("host", FORMS)
@pytest.mark.usefixtures("public_redirector")
async def test_each_form_is_refused_as_a_redirect_hop(host: str, internal: Internal, sender: Sender) -> None:
    public = await sender.post(
        f"{internal.redirector}?location=http://{REDIRECTOR}:{internal.port}/", b"{}", {}, timeout_ms=5000
    )
    assert (public.verdict, public.excerpt) == (Verdict.DELIVERED, "internal secret")  # the redirect is followed
    internal.heard.clear()
    location = f"http://{host}:{internal.port}/".replace("%", "%25")  # the query string decodes it once
    attempt = await sender.post(f"{internal.redirector}?location={location}", b"{}", {}, timeout_ms=5000)
    assert (attempt.verdict, attempt.status_code, attempt.excerpt) == (Verdict.REJECTED, None, None), attempt
    assert internal.heard == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1%251]", "[::ffff:127.0.0.1]"])
async def test_the_connected_peer_is_checked_when_the_host_check_is_bypassed(
    host: str, internal: Internal, sender: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssrf, "literal_address", lambda host: None)  # a parsing gap yet unknown
    attempt = await sender.post(f"http://{host}:{internal.port}/", b"{}", {}, timeout_ms=5000)
    assert (attempt.verdict, attempt.status_code, attempt.excerpt) == (Verdict.REJECTED, None, None), attempt
    assert "loopback address" in (attempt.error or "")
    assert internal.heard == []
    allowing = Sender(allow_targets=frozenset({"loopback"}))
    await allowing.start()
    try:
        allowed = await allowing.post(f"http://{host}:{internal.port}/", b"{}", {}, timeout_ms=5000)
    finally:
        await allowing.stop()
    assert (allowed.verdict, allowed.excerpt) == (Verdict.DELIVERED, "internal secret")  # allow_targets is honoured

"""SSRF guard: partner URLs must not reach our own network.

The host is resolved and every address it resolves to is checked, because a public name can
point at 127.0.0.1. The caller connects to the checked address (and checks again after every
redirect), so a second DNS answer cannot swap it for a private one. A host that is an address is
checked in whatever form it is written (``target``), and the caller checks the connected peer too.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from yarl import URL

from hookstream.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba).
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
CATEGORIES = ("loopback", "private", "link_local", "metadata", "reserved")


class UnsafeTarget(PermanentError):
    """The URL resolves to an address partners must not make us call."""


def category(address: IPAddress) -> str | None:
    """Why the address is refused, or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA:
        return "metadata"
    if address.is_unspecified or address.is_multicast:
        return "reserved"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT):
        return "private"
    if address.is_reserved:
        return "reserved"
    return None


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_LOCALHOST = ipaddress.IPv4Address("127.0.0.1")


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host stands for without asking DNS, or None for a name to resolve.

    Reads every form a resolver takes: inet_aton's legacy IPv4 (2130706433, 0177.0.0.1, 0x7f.1, 127.1),
    trailing dots, percent-encoding, IPv6 with a zone id (raw or as %25), and RFC 6761's localhost names.
    """
    text = host.strip("[]")
    if ":" in text:  # aiohttp connects to any host with a colon as an address, without resolving it
        try:
            return ipaddress.IPv6Address(text.partition("%")[0])  # the zone id names an interface, not an address
        except ValueError:
            raise UnsafeTarget(f"{host!r} is neither an IP address nor a host name") from None
    name = unquote(text).rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return _LOCALHOST
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except (OSError, ValueError):  # ValueError: a NUL
        return None


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> tuple[IPAddress, str | None]:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    return address, category(address)


def check_addresses(host: str, addresses: Iterable[str], allow: frozenset[str] = frozenset()) -> list[str]:
    """Return the addresses if all are allowed; raise UnsafeTarget naming the first refused one."""
    checked = []
    for text in addresses:
        address, reason = _parsed(text)
        if reason is not None and reason not in allow:
            raise UnsafeTarget(
                f"{host} resolves to {address} ({reason.replace('_', '-')} address): refused to prevent SSRF;"
                f" allow it with delivery setting allow_targets={reason}"
            )
        checked.append(str(address))
    return checked


def target(url: str, allow: frozenset[str] = frozenset()) -> URL:
    """The URL as aiohttp reads it, refused if its host is an address in a refused category.

    Raises ValueError if it is no URL. Names are checked when resolved, as their answer may change.
    """
    parsed = URL(url)
    host = parsed.raw_host or ""
    address = literal_address(host)
    if address is not None:
        check_addresses(host, [str(address)], allow)
    return parsed


async def resolve_safe(url: str, allow: frozenset[str] = frozenset()) -> list[str]:
    """Resolve the URL's host and check every address; return them for the connection to use."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeTarget(f"{url!r} is not an absolute http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"{host} does not resolve: {exc.strerror}") from exc
    return check_addresses(host, sorted({str(info[4][0]) for info in infos}), allow)

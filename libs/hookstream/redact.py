"""Credentials out of what we show and log: URLs with userinfo or query tokens, webhook URLs whose path
is the secret (Slack), header values. What is shown back to a token holder, written to the audit log,
a span or the delivery log goes through here first."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def url(text: str, *, keep_path: bool = True) -> str:
    """The URL without its userinfo and with every query value masked; without ``keep_path``, only
    scheme and host (a Slack or Teams webhook URL is its own secret)."""
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL we can take apart: show nothing of it
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if not keep_path:
        return urlunsplit((parts.scheme, netloc, "/" + MASK if parts.path not in ("", "/") else parts.path, "", ""))
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def urls_in(text: str, *, keep_path: bool = True) -> str:
    """``text`` with every URL in it passed through ``url`` (an error message that quotes one)."""
    return _URL.sub(lambda m: url(m.group(0), keep_path=keep_path), text)


def header_values(headers: dict[str, str]) -> dict[str, str]:
    """Header names kept, values masked: custom headers are often a partner's Authorization."""
    return dict.fromkeys(headers, MASK)

"""One canonical event, rendered as the partner chose: JSON or XML, the same fields, byte-stable.

XML mapping: root ``<event>``; a field becomes an element of the same name in schema order; a
record nests; a list repeats a singular child element (``items/item``, ``tracking/tracking_number``);
null fields are left out; timestamps are RFC 3339 UTC with milliseconds.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from hookstream.signatures import standard_headers
from hookstream.store.subscriptions import Subscription

LIST_ITEM = {"items": "item", "tracking": "tracking_number"}
USER_AGENT = "hookstream/0.1 (+https://github.com/hookstream)"


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return _timestamp(value)
    raise TypeError(f"{type(value).__name__} is not part of a canonical event")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render_json(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=_json_default, separators=(",", ":"), ensure_ascii=False).encode()


def render_xml(event: dict[str, Any]) -> bytes:
    root = ET.Element("event")
    _fill(root, _plain(event))
    return b'<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode").encode()


def _fill(parent: ET.Element, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        element = ET.SubElement(parent, name)
        if isinstance(value, dict):
            _fill(element, value)
        elif isinstance(value, list):
            for entry in value:
                child = ET.SubElement(element, LIST_ITEM.get(name, "value"))
                if isinstance(entry, dict):
                    _fill(child, entry)
                else:
                    child.text = str(entry)
        elif isinstance(value, bool):
            element.text = "true" if value else "false"
        else:
            element.text = str(value)


def render(event: dict[str, Any], content_type: str) -> tuple[bytes, str]:
    """The body and its Content-Type header."""
    if content_type == "xml":
        return render_xml(event), "application/xml"
    return render_json(event), "application/json"


def signed_request(sub: Subscription, event: dict[str, Any], message_id: str) -> tuple[bytes, dict[str, str]]:
    """The body of ``event`` as ``sub`` wants it, and its headers: the subscription's own, Content-Type,
    User-Agent and the Standard Webhooks signature with every active secret."""
    body, content_type = render(event, sub.content_type)
    headers = {
        **sub.headers,
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        **standard_headers(sub.signing_secrets(), message_id, int(time.time()), body),
    }
    return body, headers

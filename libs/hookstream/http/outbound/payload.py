"""One canonical event, rendered as the partner chose: JSON or XML, the same fields, byte-stable.

XML mapping: root ``<event>``; a field becomes an element of the same name in schema order; a
record nests; a list repeats a singular child element (``items/item``, ``tracking/tracking_number``);
null fields are left out; timestamps are RFC 3339 UTC with milliseconds. A character XML 1.0 cannot
carry (a control character, a lone surrogate, U+FFFE/U+FFFF) becomes U+FFFD.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from hookstream.signatures import standard_headers
from hookstream.store.subscriptions import Subscription

LIST_ITEM = {"items": "item", "tracking": "tracking_number"}
USER_AGENT = "hookstream/0.1 (+https://github.com/hookstream)"

# ElementTree writes any character and any tag as given; a partner's parser refuses the whole document.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Names are kept to ASCII without ":" (an undeclared prefix is an error too) so every parser reads them.
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]")


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


def _text(value: Any) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", str(value))


def _name(key: str) -> str:
    """The schema's field names as they are; any other key as a well-formed name (``1st name`` → ``_1st_name``)."""
    name = _NOT_NAME_CHAR.sub("_", key)
    return name if name[:1].isalpha() or name[:1] == "_" else "_" + name


def _fill(parent: ET.Element, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if value is None:
            continue
        element = ET.SubElement(parent, _name(name))
        if isinstance(value, dict):
            _fill(element, value)
        elif isinstance(value, list):
            for entry in value:
                child = ET.SubElement(element, LIST_ITEM.get(name, "value"))
                if isinstance(entry, dict):
                    _fill(child, entry)
                else:
                    child.text = _text(entry)
        elif isinstance(value, bool):
            element.text = "true" if value else "false"
        else:
            element.text = _text(value)


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

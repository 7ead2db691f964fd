"""``Retry-After`` as an HTTP peer sends it: seconds or an HTTP date."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime


def retry_after_ms(value: str | None, now: float | None = None) -> int | None:
    """Retry-After in milliseconds; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0, int((when - (time.time() if now is None else now)) * 1000))

"""W3C trace context, carried in the ``traceparent`` header of every record."""

from __future__ import annotations

import os
import random
import re

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


# Trace and span ids need uniqueness, not secrecy (W3C trace-context §3.2.2.3); the
# non-cryptographic generator is much cheaper than os.urandom on the request path.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)  # forked workers must not repeat each other's ids


def _hex(bits: int) -> str:
    return f"{_random.getrandbits(bits):0{bits // 4}x}"


def child_traceparent(incoming: str | None) -> str:
    """Continue the caller's trace with a new span id, or start a new sampled trace."""
    match = _TRACEPARENT.match((incoming or "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return f"00-{match.group(1)}-{_span_id()}-{match.group(3)}"
    trace_id = _hex(128)
    while trace_id == "0" * 32:
        trace_id = _hex(128)
    return f"00-{trace_id}-{_span_id()}-01"


def _span_id() -> str:
    span_id = _hex(64)
    while span_id == "0" * 16:  # all-zero ids are invalid
        span_id = _hex(64)
    return span_id

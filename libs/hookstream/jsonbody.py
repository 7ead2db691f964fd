"""JSON from an untrusted body, parsed only once its nesting is known to be shallow.

``json.loads`` recurses once per level: a body of a few thousand ``[`` raises RecursionError (a 500
rather than a 400), and one just short of that leaves the next reader too little stack. Real
webhooks nest a handful of levels, so anything deeper than ``MAX_DEPTH`` is refused up front.
"""

from __future__ import annotations

import json
import operator
import re
from itertools import accumulate, count
from typing import Any

MAX_DEPTH = 128

_PEEL = 4
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_MARK = bytes(b for b in range(256) if b not in b'"[]{}')


class InvalidJson(ValueError):
    """Not JSON, or nested deeper than the limit; the message says which."""


def loads(body: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` (in any encoding it reads) refusing more than ``max_depth`` levels; raises only InvalidJson."""
    found = _depth_beyond(_marks(_utf8(body)), max_depth)
    if found:
        raise InvalidJson(f"nested {found} levels deep, deeper than the {max_depth} levels accepted")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJson(str(exc)) from None
    except RecursionError:  # only if max_depth is set near the interpreter's limit
        raise InvalidJson(f"nested too deep to parse; at most {max_depth} levels are accepted") from None


def depth(body: bytes | str) -> int:
    """How deep arrays and objects nest in ``body``, brackets within strings aside; linear time."""
    return _depth(_outside_strings(_marks(_utf8(body))))


def _utf8(body: bytes | str) -> bytes:
    """The body as UTF-8, where no byte of a multi-byte character can pass for a bracket or a quote."""
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    encoding = json.detect_encoding(body)  # as json.loads reads bytes: UTF-8, -16 or -32
    if encoding.startswith("utf-8"):
        return body
    try:
        return body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise InvalidJson(str(exc)) from None


def _marks(body: bytes) -> bytes:
    """Only the quotes and brackets of UTF-8 ``body``, escapes left out, every bracket as ``[`` or ``]``."""
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)  # an escaped quote ends no string; an escaped backslash escapes nothing
    return body.translate(_SQUARE, _NOT_MARK)


def _outside_strings(marks: bytes) -> bytes:
    """The brackets between the strings. Where the body is not JSON this may miss some, but only past
    the point where the parser stops."""
    if marks.count(b'""') * 2 == marks.count(b'"'):  # every string came down to "": none holds a bracket
        return marks.translate(None, b'"')
    marks = marks.replace(b'""', b"")  # two quotes in a row hold nothing and leave the others' parity
    return b"".join(marks.split(b'"')[::2])


def _depth_beyond(marks: bytes, limit: int) -> int:
    """The depth if it is beyond ``limit``, else 0."""
    if marks.count(b"[") <= limit:  # brackets in strings too: it cannot nest deeper
        return 0
    brackets = peeled = _outside_strings(marks)
    # Bodies are mostly many small arrays and objects a few levels deep: peeling the innermost pairs a
    # few times leaves little to count. Peeling may overstate an unbalanced body's depth, never understate.
    for _ in range(_PEEL):
        peeled = peeled.replace(b"[]", b"")
    if _PEEL + _depth(peeled) <= limit:
        return 0
    found = _depth(brackets)
    return found if found > limit else 0


def _depth(brackets: bytes) -> int:
    # The depth just before each "]" is the "[" seen so far less the "]" seen so far.
    return int(max(map(operator.sub, accumulate(map(len, brackets.split(b"]"))), count())))

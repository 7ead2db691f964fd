"""The admin API refuses a deeply nested body with its usual 400, not a RecursionError's 500."""

from __future__ import annotations

import pytest
from hookstream.jsonbody import MAX_DEPTH

from tests.integration.test_admin_api import World, world  # noqa: F401 - the admin on the real stack


@pytest.mark.parametrize(
    ("raw", "levels"),
    [
        (b"[" * 200_000, 200_000),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, 100_000),
        (b'{"name": "deep", "headers": ' + b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH + b"}", MAX_DEPTH + 1),
    ],
    ids=["open-brackets", "objects-100000", "just-too-deep"],
)
async def test_a_deeply_nested_body_is_400(world: World, raw: bytes, levels: int) -> None:  # noqa: F811
    status, body, _ = await world.call("POST", "/api/v1/subscriptions", "write", raw=raw)
    assert (status, body["error"]) == (400, "bad_request"), body
    assert f"nested {levels} levels deep" in body["detail"]
    status, listed, _ = await world.call("GET", "/api/v1/subscriptions", "read")
    assert status == 200
    assert len(listed["subscriptions"]) == 2  # nothing was created

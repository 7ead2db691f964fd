"""Hostile bodies for the admin API: a deeply nested one gets its usual 400, not a RecursionError's 500;
a huge one is refused with 413 before it is buffered, whatever Content-Length claims."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from hookstream.jsonbody import MAX_DEPTH

from tests.integration.test_admin_api import World, world  # noqa: F401 - the admin on the real stack


@pytest.mark.parametrize(
    ("raw", "levels"),
    [
        (b"[" * 60_000, 60_000),  # under the 64 KiB body limit, so the depth check is what refuses it
        (b'{"a":' * 6_000 + b"1" + b"}" * 6_000, 6_000),
        (b'{"name": "deep", "headers": ' + b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH + b"}", MAX_DEPTH + 1),
    ],
    ids=["open-brackets", "objects-6000", "just-too-deep"],
)
async def test_a_deeply_nested_body_is_400(world: World, raw: bytes, levels: int) -> None:  # noqa: F811
    status, body, _ = await world.call("POST", "/api/v1/subscriptions", "write", raw=raw)
    assert (status, body["error"]) == (400, "bad_request"), body
    assert f"nested {levels} levels deep" in body["detail"]
    status, listed, _ = await world.call("GET", "/api/v1/subscriptions", "read")
    assert status == 200
    assert len(listed["subscriptions"]) == 2  # nothing was created


async def test_a_body_over_the_limit_is_413_and_changes_nothing(world: World) -> None:  # noqa: F811
    huge = b'{"name": "big", "url": "https://c.example/hooks", "event_types": ["' + b"x" * 200_000 + b'"]}'
    status, body, _ = await world.call("POST", "/api/v1/subscriptions", "write", raw=huge)
    assert (status, body["error"]) == (413, "payload_too_large"), body
    assert "at most 65536" in body["detail"]
    recover = f"/api/v1/subscriptions/{world.sub_a}/recover"  # a partner token's body is bounded too
    status, body, _ = await world.call("POST", recover, "partner_a", raw=huge)
    assert status == 413
    status, listed, _ = await world.call("GET", "/api/v1/subscriptions", "read")
    assert len(listed["subscriptions"]) == 2


async def test_a_chunked_body_over_the_limit_is_413(world: World) -> None:  # noqa: F811
    """No Content-Length to go by: the body is counted as it streams in."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "big", "event_types": ["'
        for _ in range(100):
            yield b"x" * 1_000
        yield b'"]}'

    headers = {"Authorization": f"Bearer {world.tokens['write']}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(world.url + "/api/v1/subscriptions", data=chunks(), headers=headers) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"] == "payload_too_large"

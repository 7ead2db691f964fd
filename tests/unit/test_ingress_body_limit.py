"""An oversized body over a real socket: the sender reads the 413, even with ``Connection: close``.

The in-memory TestClient cannot show this: the failure was a TCP reset. When the server answered
early and closed a ``Connection: close`` connection with request bytes still unread in its socket,
the kernel reset the connection, and the client (urllib, which always sends ``Connection: close``)
saw ``ConnectionResetError``/``BrokenPipeError`` instead of the 413. So the app runs here under a
real uvicorn server with httptools, as ``hookstream run ingress`` serves it, with a fake publisher.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from hookstream_services.ingress.app import create_app
from hookstream_services.ingress.config import load_config
from hookstream_tools.devstack.process import free_port

from tests.signing import sign, write_config
from tests.unit.test_ingress_app import FakePublisher

LIMIT = 1024 * 1024  # IngressOptions.max_body_bytes, the default the test config keeps


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture(params=["uvloop", "asyncio"])  # uvloop: as `hookstream run ingress` serves it
def base_url(tmp_path: Path, publisher: FakePublisher, request: pytest.FixtureRequest) -> Iterator[str]:
    config = load_config(write_config(tmp_path / "hookstream.toml"))
    assert config.ingress.max_body_bytes == LIMIT
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, publisher),
            host="127.0.0.1",
            port=port,
            http="httptools",
            loop=request.param,
            lifespan="off",
            access_log=False,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn exited while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _oversized(size: int) -> tuple[bytes, dict[str, str]]:
    """A signed JSON body of exactly ``size`` bytes."""
    body = b'{"x": "' + b"a" * (size - 9) + b'"}'
    assert len(body) == size
    return body, sign("shopify", {"Content-Type": "application/json"}, body)


def _assert_413(status: int, raw: bytes) -> None:
    assert status == 413
    answer = json.loads(raw)
    assert answer["error"] == "body_too_large"
    assert str(LIMIT) in answer["detail"]


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT, 6 * LIMIT])
def test_urllib_with_content_length_reads_the_413(base_url: str, publisher: FakePublisher, size: int) -> None:
    body, headers = _oversized(size)
    request = urllib.request.Request(f"{base_url}/webhooks/shopify", data=body, headers=headers, method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as caught:  # anything else (a reset, a timeout) is the bug
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 - our own http URL
    assert caught.value.headers.get("connection") == "close"  # urllib asked for it; the server honoured it
    _assert_413(caught.value.code, caught.value.read())
    assert publisher.published == []


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT, 6 * LIMIT])
def test_chunked_without_content_length_reads_the_413(base_url: str, publisher: FakePublisher, size: int) -> None:
    body, headers = _oversized(size)
    piece = 64 * 1024
    chunks = (body[i : i + piece] for i in range(0, len(body), piece))
    conn = http.client.HTTPConnection(base_url.removeprefix("http://"), timeout=30)
    try:
        conn.request(
            "POST",
            "/webhooks/shopify",
            body=chunks,
            headers={**headers, "Connection": "close"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        _assert_413(response.status, response.read())
    finally:
        conn.close()
    assert publisher.published == []


def test_a_body_within_the_limit_is_still_accepted_over_the_socket(base_url: str, publisher: FakePublisher) -> None:
    body = json.dumps({"id": 4242, "note": "a" * (LIMIT - 1000)}).encode()
    headers = sign(
        "shopify",
        {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "w-1"},
        body,
    )
    request = urllib.request.Request(f"{base_url}/webhooks/shopify", data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own http URL
        assert response.status == 200
    assert len(publisher.published) == 1


def test_declared_too_large_with_expect_continue_is_answered_without_waiting_for_the_body(base_url: str) -> None:
    """A sender that waits for "100 Continue" gets the 413 instead, at once: the server must not wait to drain."""
    body, headers = _oversized(2 * LIMIT)
    host, port = base_url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /webhooks/shopify HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            f"Expect: 100-continue\r\nConnection: close\r\n{head}\r\n".encode()
        )
        response = http.client.HTTPResponse(sock)
        response.begin()  # a timeout here: the server asked for the body or waited for it
        _assert_413(response.status, response.read())

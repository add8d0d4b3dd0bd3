"""The HTTP server's protection from slow and oversized traffic, over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from services.edge.server import HttpConnection, Limits, Request, serve

# Every read is bounded: a server that fails to close fails the test instead of hanging it.
_WAIT_S = 5.0


async def _ok(request: Request, conn: HttpConnection) -> None:
    conn.respond(200, [], b"{}", "application/json")


Start = Callable[..., Awaitable[int]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts an in-process server with the given Limits fields; returns its port."""
    servers: list[asyncio.Server] = []

    async def _start(**limits: Any) -> int:
        server = await serve(_ok, "127.0.0.1", 0, Limits(**limits))
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield _start
    for server in servers:
        server.close()


async def _send(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), _WAIT_S)
    finally:
        writer.close()


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _reason(response: bytes) -> str:
    body: Any = json.loads(response.partition(b"\r\n\r\n")[2])
    return str(body["details"][0]["reason"])


async def test_a_request_within_every_limit_is_served(start: Start) -> None:
    """An ordinary request is answered 200."""
    limited = await start()
    response = await _send(limited, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert _status(response) == 200


async def test_a_url_over_the_limit_is_414(start: Start) -> None:
    """A URL longer than url_bytes is refused with 414 URL_TOO_LONG and closed."""
    limited = await start(url_bytes=64)
    response = await _send(limited, b"GET /%s HTTP/1.1\r\nhost: x\r\n\r\n" % (b"a" * 100))
    assert (_status(response), _reason(response)) == (414, "URL_TOO_LONG")


async def test_headers_over_the_byte_limit_are_431(start: Start) -> None:
    """Header bytes beyond header_bytes are refused with 431 HEADERS_TOO_LARGE."""
    limited = await start(header_bytes=1024)
    response = await _send(limited, b"GET / HTTP/1.1\r\nx-big: %s\r\n\r\n" % (b"v" * 2000))
    assert (_status(response), _reason(response)) == (431, "HEADERS_TOO_LARGE")


async def test_more_headers_than_the_count_limit_are_431(start: Start) -> None:
    """The eleventh header is refused with 431 when header_count is 10."""
    limited = await start(header_count=10)
    lines = b"".join(b"x-h%d: v\r\n" % i for i in range(11))
    response = await _send(limited, b"GET / HTTP/1.1\r\n%s\r\n" % lines)
    assert _status(response) == 431


async def test_an_endless_header_is_refused_before_it_ends(start: Start) -> None:
    """A header that never ends is cut off once the head outgrows the limits."""
    limited = await start(header_bytes=1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", limited)
    response = b""
    try:
        writer.write(b"GET / HTTP/1.1\r\nx-big: ")
        for _ in range(256):  # 4 MiB at most, far beyond any buffer
            writer.write(b"v" * 16 * 1024)
            await writer.drain()
        response = await asyncio.wait_for(reader.read(), _WAIT_S)
    except ConnectionError:
        pass  # closed while we were still writing: refused as well
    finally:
        writer.close()
    assert response == b"" or _status(response) == 431


async def test_a_slow_client_is_dropped_after_the_read_timeout(start: Start) -> None:
    """Headers trickling in a byte every 0.1 s get 408 and a close after 0.5 s."""
    limited = await start(read_timeout_s=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", limited)
    started = time.monotonic()
    answer = asyncio.ensure_future(reader.read(65536))
    try:
        # One byte every 0.1 s for at most 1 s: the test is about time, a slowloris client.
        for byte in b"GET / HTTP/1.1\r\nx-slow: vvvvvvvvvv":
            if answer.done() or time.monotonic() - started > 1:
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
        response = await asyncio.wait_for(answer, _WAIT_S)
    finally:
        writer.close()
    assert (_status(response), _reason(response)) == (408, "REQUEST_TIMEOUT")
    assert time.monotonic() - started < 3


async def test_an_idle_keep_alive_connection_is_closed(start: Start) -> None:
    """After a response, a connection sending nothing is closed after the idle timeout."""
    limited = await start(idle_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", limited)
    try:
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), _WAIT_S)
    finally:
        writer.close()
    assert _status(response) == 200  # read() returned: the server closed the connection


async def test_a_connection_over_the_cap_gets_503_with_retry_after(start: Start) -> None:
    """The third connection at a cap of 2 is answered 503 with Retry-After and closed."""
    limited = await start(max_connections=2)
    held = [await asyncio.open_connection("127.0.0.1", limited) for _ in range(2)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", limited)
        response = await asyncio.wait_for(reader.read(), _WAIT_S)
        writer.close()
    finally:
        for _, w in held:
            w.close()
    assert (_status(response), _reason(response)) == (503, "TOO_MANY_CONNECTIONS")
    assert b"\r\nretry-after: 1\r\n" in response


async def test_a_closed_connection_frees_its_slot(start: Start) -> None:
    """Once a connection closes, a new one under the cap is served again."""
    limited = await start(max_connections=1)
    await _send(limited, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    response = await _send(limited, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert _status(response) == 200

"""Slow and oversized traffic against a real edge process (generic mode, library backend),
with a read timeout small enough to watch it work. The fixture waits on health, never sleeps."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.edge.library import (
    library_edge,
)

pytestmark = pytest.mark.e2e
_READ_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def edge_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    limits = {
        "PAYNOW_EDGE_READ_TIMEOUT_S": str(_READ_TIMEOUT_S),
        "PAYNOW_EDGE_HEADER_LIMIT_BYTES": "4096",
        "PAYNOW_EDGE_MAX_CONNECTIONS": "8",
    }
    with library_edge(tmp_path_factory.mktemp("library"), env=limits) as (port, _):
        yield port


def _exchange(port: int, data: bytes) -> bytes:
    """Send `data` and read until the edge closes the connection (10 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _status_and_reason(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["details"][0]["reason"]


def test_a_slow_client_is_dropped_after_the_read_timeout(edge_port: int) -> None:
    """Headers sent a byte every 0.2 s are cut off with 408 after the 1 s read timeout."""
    with socket.create_connection(("127.0.0.1", edge_port), timeout=10) as sock:
        started = time.monotonic()
        sock.settimeout(0.2)  # the test is about time: each recv waits as the client would
        response = b""
        for byte in b"GET /v1/shelves/s1 HTTP/1.1\r\nx-slow: " + b"v" * 40:
            try:
                sock.send(bytes([byte]))
                response = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionError:
                break
            if response:
                break
        elapsed = time.monotonic() - started
    assert _status_and_reason(response) == (408, "REQUEST_TIMEOUT")
    assert _READ_TIMEOUT_S <= elapsed < _READ_TIMEOUT_S + 2


def test_an_over_deep_json_body_is_refused_cleanly(edge_port: int) -> None:
    """A body nesting 50 000 levels is 400 JSON_TOO_DEEP, not a crash."""
    body = b'{"borrower": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = _exchange(
        edge_port,
        b"POST /v1/shelves/s1/books/b1:checkout HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert _status_and_reason(response) == (400, "JSON_TOO_DEEP")


def test_an_oversized_header_is_refused_with_431(edge_port: int) -> None:
    """A 8 KiB header over a 4 KiB limit is 431 HEADERS_TOO_LARGE."""
    response = _exchange(
        edge_port, b"GET /v1/shelves/s1 HTTP/1.1\r\nx-big: %s\r\n\r\n" % (b"v" * 8192)
    )
    assert _status_and_reason(response) == (431, "HEADERS_TOO_LARGE")


def test_connections_beyond_the_cap_get_503_and_later_ones_are_served(edge_port: int) -> None:
    """With 8 connections held the ninth gets 503 + Retry-After; after they close, 200."""
    held = [socket.create_connection(("127.0.0.1", edge_port), timeout=10) for _ in range(8)]
    try:
        response = _exchange(edge_port, b"")
    finally:
        for sock in held:
            sock.close()
    assert _status_and_reason(response) == (503, "TOO_MANY_CONNECTIONS")
    assert b"\r\nretry-after: 1\r\n" in response
    deadline = time.monotonic() + 10
    while True:  # the edge notices the closes asynchronously; poll, bounded, no sleep
        again = _exchange(edge_port, b"GET /v1/shelves/s1 HTTP/1.1\r\nconnection: close\r\n\r\n")
        if again.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
    assert again.startswith(b"HTTP/1.1 200")

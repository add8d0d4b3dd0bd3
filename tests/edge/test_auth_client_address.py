"""The client address the edge sends backends as `x-forwarded-for`."""

from __future__ import annotations

import asyncio
import ipaddress

from services.edge.metadata import FORWARDED_FOR_HEADER, client_address
from services.edge.server import HttpConnection, Limits, Request, serve

_PROXY = (ipaddress.ip_network("10.0.0.0/8"),)


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    """By default a client's X-Forwarded-For is ignored: the TCP peer is the address."""
    assert client_address("203.0.113.9", b"198.51.100.1", ()) == "203.0.113.9"


def test_a_trusted_proxy_passes_on_the_address_it_saw() -> None:
    """Behind a trusted proxy, the entry that proxy appended is the client."""
    assert client_address("10.0.0.2", b"198.51.100.1, 203.0.113.9", _PROXY) == "203.0.113.9"


def test_entries_added_by_further_trusted_proxies_are_skipped() -> None:
    """Two trusted hops: the first untrusted address from the right is the client."""
    assert client_address("10.0.0.2", b"203.0.113.9, 10.0.0.7", _PROXY) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    """A client not in the trusted set sending X-Forwarded-For is still its own peer."""
    assert client_address("203.0.113.9", b"10.0.0.2", _PROXY) == "203.0.113.9"


async def _metadata_seen(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The `Grpc-Metadata-*` pairs the real server hands the gateway for one request."""
    seen: list[tuple[bytes, bytes]] = []

    async def handler(request: Request, conn: HttpConnection) -> None:
        seen.extend(request.grpc_metadata)
        conn.respond(200, [], b"{}", "application/json")

    server = await serve(handler, "127.0.0.1", 0, Limits(body_bytes=1024))
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"GET / HTTP/1.1\r\nhost: x\r\n{lines}connection: close\r\n\r\n".encode())
        await reader.read()
        writer.close()
    finally:
        server.close()
    return seen


async def test_the_server_sets_x_forwarded_for_to_the_peer() -> None:
    """Every request carries the TCP peer as `x-forwarded-for` metadata."""
    assert await _metadata_seen({}) == [(FORWARDED_FOR_HEADER, b"127.0.0.1")]


async def test_a_client_cannot_set_x_forwarded_for_in_either_form() -> None:
    """Both X-Forwarded-For and Grpc-Metadata-X-Forwarded-For from a client are ignored."""
    spoofed = {"X-Forwarded-For": "198.51.100.1", "Grpc-Metadata-X-Forwarded-For": "198.51.100.2"}
    assert await _metadata_seen(spoofed) == [(FORWARDED_FOR_HEADER, b"127.0.0.1")]

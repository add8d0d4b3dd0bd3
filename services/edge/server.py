"""A minimal HTTP/1.1 server: asyncio.Protocol + httptools (llhttp), keep-alive, chunked out.

Measured against uvicorn (httptools, bare ASGI), starlette and granian for a trivial JSON
reply, this is the cheapest per request (docs/edge.md): no ASGI dicts, no per-request
middleware objects, one write per response. Requests on one connection are served in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable

import httptools

from .errors import reason_phrase
from .metadata import FORWARDED_FOR_HEADER, METADATA_PREFIX, TrustedProxies, client_address

__all__ = ["HttpConnection", "Request", "serve"]

Handler = Callable[["Request", "HttpConnection"], Awaitable[None]]
# Past this many bytes of an oversized body, stop reading it politely and drop the client.
_DISCARD_FACTOR = 16
_MALFORMED = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class Request:
    """One parsed request; header names are lower-cased bytes."""

    __slots__ = (
        "body",
        "grpc_metadata",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "too_large",
    )

    def __init__(self) -> None:
        self.method = ""
        self.path = ""
        self.query = ""
        self.headers: dict[bytes, bytes] = {}
        self.grpc_metadata: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.keep_alive = True
        self.too_large = False


class HttpConnection(asyncio.Protocol):
    """One client connection; the handler answers through respond() or the stream methods."""

    def __init__(
        self, handler: Handler, body_limit: int, trusted_proxies: TrustedProxies = ()
    ) -> None:
        self._handler = handler
        self._limit = body_limit
        self._trusted = trusted_proxies
        self._peer: str | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: collections.deque[Request] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._url = b""
        self._request = Request()
        self._chunks: list[bytes] = []
        self._size = 0
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._peer = str(peer[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._writable.set()
        if self._worker is not None:
            self._worker.cancel()  # cancels the backend call of a client that went away

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            self._write(_MALFORMED)
            self._close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._request = Request()
        self._chunks = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name.startswith(METADATA_PREFIX):
            if name != FORWARDED_FOR_HEADER:  # only the edge says where a client is
                self._request.grpc_metadata.append((name, value))
        else:
            self._request.headers[name] = value

    def on_headers_complete(self) -> None:
        headers = self._request.headers
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self._limit:
            self._request.too_large = True
        elif headers.get(b"expect", b"").lower() == b"100-continue":
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._request.too_large = True
            self._chunks = []
            if self._size > self._limit * _DISCARD_FACTOR:
                self._close()
        else:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        request.method = self._parser.get_method().decode()
        path, _, query = self._url.partition(b"?")
        request.path = path.decode("latin-1")
        request.query = query.decode("latin-1")
        request.body = b"".join(self._chunks)
        request.keep_alive = self._parser.should_keep_alive() and not request.too_large
        if self._peer is not None:
            forwarded = request.headers.get(b"x-forwarded-for")
            address = client_address(self._peer, forwarded, self._trusted)
            request.grpc_metadata.append((FORWARDED_FOR_HEADER, address.encode("latin-1")))
        self._queue.append(request)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        try:
            while self._queue and self._transport is not None:
                request = self._queue.popleft()
                self.keep_alive = request.keep_alive
                await self._handler(request, self)
                if not self.keep_alive:
                    self._close()
                    return
        finally:
            self._worker = None

    # responses
    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _head(self, status: int, headers: list[bytes], content_type: str) -> bytes:
        connection = b"" if self.keep_alive else b"connection: close\r\n"
        return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%s" % (
            status,
            reason_phrase(status).encode(),
            content_type.encode(),
            connection,
            b"".join(headers),
        )

    def respond(self, status: int, headers: list[bytes], body: bytes, content_type: str) -> None:
        """Send a whole response in one write; header lines end with CRLF."""
        self._write(
            b"%scontent-length: %d\r\n\r\n%s"
            % (self._head(status, headers, content_type), len(body), body)
        )

    def start_stream(self, status: int, headers: list[bytes], content_type: str) -> None:
        """Send the head of a chunked response; follow with send_chunk() and end_stream()."""
        head = self._head(status, headers, content_type)
        self._write(b"%stransfer-encoding: chunked\r\n\r\n" % head)

    async def send_chunk(self, data: bytes) -> None:
        """Send one chunk now, waiting while the client is slower than the backend."""
        self._write(b"%x\r\n%s\r\n" % (len(data), data))
        await self._writable.wait()

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    @property
    def open(self) -> bool:
        """False once the client has gone."""
        return self._transport is not None


async def serve(
    handler: Handler,
    host: str,
    port: int,
    body_limit: int,
    trusted_proxies: TrustedProxies = (),
) -> asyncio.Server:
    """Listen on host:port (0 picks a free port); the server is already accepting. Every
    request carries its client's address as `x-forwarded-for` metadata (metadata.py)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(handler, body_limit, trusted_proxies), host, port
    )
    with contextlib.suppress(AttributeError):
        await server.start_serving()
    return server

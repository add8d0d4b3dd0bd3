"""A minimal HTTP/1.1 server: asyncio.Protocol + httptools (llhttp), keep-alive, chunked out.

Measured against uvicorn (httptools, bare ASGI), starlette and granian for a trivial JSON
reply, this is the cheapest per request (docs/edge.md): no ASGI dicts, no per-request
middleware objects, one write per response. Requests on one connection are served in order.

Limits (docs/edge.md, "Limits"): URL length (414), header bytes and count (431), body size
(413, answered by the gateway), a read timeout from a request's first byte to its last (408,
or a plain close once a response has started), an idle timeout between keep-alive requests,
and a cap on open connections (503 with Retry-After, then close). Each is an integer or
float comparison in a parser callback; the timers cost one float store per request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import cast

import grpc
import httptools

from .errors import EdgeError, reason_phrase
from .metadata import FORWARDED_FOR_HEADER, METADATA_PREFIX, TrustedProxies, client_address

__all__ = ["HttpConnection", "Limits", "Request", "serve"]

Handler = Callable[["Request", "HttpConnection"], Awaitable[None]]
# Past this many bytes of an oversized body, stop reading it politely and drop the client.
_DISCARD_FACTOR = 16
_MALFORMED = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
# What a connection is waiting for, which decides the timer that applies to it.
_IDLE, _READING, _SERVING = 0, 1, 2
# Bytes of a request head the parser may buffer beyond the URL and header limits (request
# line, separators) before the head as a whole counts as oversized.
_HEAD_SLACK = 1024


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """What one client may send and hold; a timeout of 0 turns that timeout off."""

    body_bytes: int = 1024 * 1024
    url_bytes: int = 8 * 1024
    header_bytes: int = 16 * 1024
    header_count: int = 100
    read_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    max_connections: int = 4096
    retry_after_s: int = 1


def refusal(
    status: int,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    metadata: dict[str, str] | None = None,
    headers: bytes = b"",
) -> bytes:
    """A whole `connection: close` response with a Status body, for errors the server
    answers before any handler runs."""
    body = EdgeError(status, code, reason, message, metadata=metadata).body()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"%scontent-length: %d\r\n\r\n%s"
        % (status, reason_phrase(status).encode(), headers, len(body), body)
    )


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing and answer `response`."""

    def __init__(self, response: bytes) -> None:
        super().__init__()
        self.response = response


class _Counter:
    """Open connections of one server."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = 0


class Request:
    """One parsed request; header names are lower-cased bytes."""

    __slots__ = (
        "body",
        "client",
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
        # The client's address (after trusted proxies); "" when the transport has none.
        self.client = ""


class HttpConnection(asyncio.Protocol):
    """One client connection; the handler answers through respond() or the stream methods."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits,
        trusted_proxies: TrustedProxies = (),
        counter: _Counter | None = None,
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._limit = limits.body_bytes
        self._trusted = trusted_proxies
        self._counter = counter if counter is not None else _Counter()
        self._counted = False
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _IDLE
        self._deadline = 0.0
        self._head_open = False
        self._head_seen = 0
        self._header_bytes = 0
        self._header_count = 0
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
        # A stream transport (uvloop's does not subclass asyncio.Transport, so no isinstance).
        self._transport = cast(asyncio.Transport, transport)
        counter = self._counter
        if counter.open >= self._limits.max_connections:
            # Answer before reading anything: the client learns to come back, and this
            # connection costs no parser work.
            retry = self._limits.retry_after_s
            self._write(
                refusal(
                    503,
                    grpc.StatusCode.UNAVAILABLE,
                    "TOO_MANY_CONNECTIONS",
                    "the edge has too many open connections; retry later",
                    metadata={"limit": str(self._limits.max_connections)},
                    headers=b"retry-after: %d\r\n" % retry,
                )
            )
            self._close()
            return
        counter.open += 1
        self._counted = True
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._peer = str(peer[0])
        self._arm(_IDLE)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._counter.open -= 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
            if self._head_open:
                # httptools buffers a header until it ends: count what it holds, so one
                # endless header cannot grow without bound before on_header sees it. The
                # chunk a head starts in is not counted (where in it the head begins is
                # unknown), so a connection holds at most one read chunk more than the limits.
                self._head_seen += len(data)
                limits = self._limits
                if self._head_seen > limits.url_bytes + limits.header_bytes + _HEAD_SLACK:
                    raise _Refused(_header_refusal(limits))
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except _Refused as exc:
            self._refuse(exc.response)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(exc.__context__.response)
            else:
                self._write(_MALFORMED)
                self._close()

    def _refuse(self, response: bytes) -> None:
        # Answer only if no earlier response on this connection is still being written.
        if self._worker is None:
            self._write(response)
        self._close()

    # timers: one handle per connection, moved forward lazily (see _expire)
    def _arm(self, phase: int) -> None:
        limits = self._limits
        timeout = limits.read_timeout_s if phase == _READING else limits.idle_timeout_s
        self._phase = phase
        if not timeout:
            self._phase = _SERVING
            return
        deadline = self._deadline = self._loop.time() + timeout
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return  # fires first, then moves itself on to this deadline
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._transport is None or self._phase == _SERVING:
            return  # the next _arm schedules a new timer
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            return
        if self._phase == _READING:
            self._refuse(
                refusal(
                    408,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "REQUEST_TIMEOUT",
                    "the request was not received within the read timeout",
                    metadata={"readTimeoutS": f"{self._limits.read_timeout_s:g}"},
                )
            )
        else:
            self._close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._request = Request()
        self._chunks = []
        self._size = 0
        self._head_open = True
        self._head_seen = 0
        self._header_bytes = 0
        self._header_count = 0
        self._arm(_READING)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.url_bytes:
            raise _Refused(
                refusal(
                    414,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "URL_TOO_LONG",
                    "the request URL is too long",
                    metadata={"limitBytes": str(self._limits.url_bytes)},
                )
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value)
        limits = self._limits
        if self._header_count > limits.header_count or self._header_bytes > limits.header_bytes:
            raise _Refused(_header_refusal(limits))
        name = name.lower()
        if name.startswith(METADATA_PREFIX):
            if name != FORWARDED_FOR_HEADER:  # only the edge says where a client is
                self._request.grpc_metadata.append((name, value))
        else:
            self._request.headers[name] = value

    def on_headers_complete(self) -> None:
        self._head_open = False
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
            request.client = address
            request.grpc_metadata.append((FORWARDED_FOR_HEADER, address.encode("latin-1")))
        self._queue.append(request)
        self._phase = _SERVING
        if self._worker is None:
            self._worker = self._loop.create_task(self._serve())

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
        if self._phase == _SERVING and self._transport is not None:
            self._arm(_IDLE)

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


def _header_refusal(limits: Limits) -> bytes:
    return refusal(
        431,
        grpc.StatusCode.INVALID_ARGUMENT,
        "HEADERS_TOO_LARGE",
        "the request headers are too large or too many",
        metadata={"limitBytes": str(limits.header_bytes), "limitCount": str(limits.header_count)},
    )


async def serve(
    handler: Handler,
    host: str,
    port: int,
    limits: Limits,
    trusted_proxies: TrustedProxies = (),
) -> asyncio.Server:
    """Listen on host:port (0 picks a free port); the server is already accepting. Every
    request carries its client's address as `x-forwarded-for` metadata (metadata.py)."""
    loop = asyncio.get_running_loop()
    counter = _Counter()
    server = await loop.create_server(
        lambda: HttpConnection(handler, limits, trusted_proxies, counter), host, port
    )
    with contextlib.suppress(AttributeError):
        await server.start_serving()
    return server

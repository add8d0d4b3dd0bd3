"""One HTTP/2 connection to a gRPC server, as an asyncio protocol (RFC 9113, client side).

What a gRPC client needs of HTTP/2 and nothing more: streams opened by HEADERS and DATA,
flow control both ways, SETTINGS, PING answered, GOAWAY and RST_STREAM honoured. No server
push (disabled in our SETTINGS), no priorities, no TLS (the edge reaches its backends on a
private network, as make run and deploy/ configure it).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import cast

import grpc
import hpack

from . import frames as f
from .headers import http_status_code
from .streams import CallFailed, Stream

__all__ = ["Connection", "ConnectionSettings"]

_U32 = struct.Struct(">L")
_TWO_U32 = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")
_STREAM_ID_MASK = 0x7FFFFFFF
_LAST_STREAM_ID = 2**31 - 1
_MAX_FRAME_SIZE = 16_384  # ours: the protocol's default, never raised
_DEFAULT_WINDOW = 65_535
_BLOCKS_REMEMBERED = 64

# RST_STREAM codes as gRPC codes (PROTOCOL-HTTP2.md, "Errors").
_RESET_CODES = {
    f.ErrorCode.REFUSED_STREAM: grpc.StatusCode.UNAVAILABLE,
    f.ErrorCode.CANCEL: grpc.StatusCode.CANCELLED,
    f.ErrorCode.ENHANCE_YOUR_CALM: grpc.StatusCode.RESOURCE_EXHAUSTED,
    f.ErrorCode.INADEQUATE_SECURITY: grpc.StatusCode.PERMISSION_DENIED,
}


class ConnectionSettings:
    """What this side advertises and enforces."""

    __slots__ = (
        "max_header_list_bytes",
        "max_message_bytes",
        "ping_timeout_s",
        "stream_window",
        "tcp_user_timeout_s",
    )

    def __init__(
        self,
        *,
        stream_window: int = 1 << 20,
        max_message_bytes: int = 4 << 20,
        max_header_list_bytes: int = 64 << 10,
        ping_timeout_s: float = 5.0,
        tcp_user_timeout_s: float = 20.0,
    ) -> None:
        self.stream_window = stream_window
        self.max_message_bytes = max_message_bytes
        self.max_header_list_bytes = max_header_list_bytes
        # A call that hits its deadline makes the client PING its connection; no answer in
        # this time and the connection is dropped (the server is gone without a FIN).
        self.ping_timeout_s = ping_timeout_s
        # The kernel's bound on data left unacknowledged (TCP_USER_TIMEOUT, Linux).
        self.tcp_user_timeout_s = tcp_user_timeout_s


class _ProtocolError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Connection(asyncio.Protocol):
    """Streams on one connection. `ready` completes at the server's first SETTINGS (the
    proof that it speaks HTTP/2); `on_close` is called once, when the connection ends or
    stops taking new streams (GOAWAY)."""

    def __init__(
        self, settings: ConnectionSettings, on_close: Callable[[Connection], None]
    ) -> None:
        self._settings = settings
        self._on_close: Callable[[Connection], None] | None = on_close
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._loop = loop
        self._outgoing: list[bytes] | None = None
        self._probe: asyncio.TimerHandle | None = None
        self._buffer = b""
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = settings.max_header_list_bytes
        self._remembered: dict[bytes, list[tuple[bytes, bytes]]] = {}
        # A header block split over HEADERS + CONTINUATION frames: (stream id, flags, parts).
        self._partial: tuple[int, int, list[bytes]] | None = None
        self._streams: dict[int, Stream] = {}
        self._next_id = 1
        self._closing = False
        # The peer's settings (defaults until its SETTINGS frame says otherwise).
        self._peer_window = _DEFAULT_WINDOW
        self._peer_max_frame = _MAX_FRAME_SIZE
        self._peer_max_streams = _LAST_STREAM_ID
        self._send_window = _DEFAULT_WINDOW
        self._table_size_changed = False
        self._recv_uncredited = 0
        self._slot_waiters: list[asyncio.Future[None]] = []
        # Streams whose request waits for window (few: most requests fit the first window).
        self._blocked: set[Stream] = set()
        self._handlers: dict[int, Callable[[int, int, bytes], None]] = {
            f.DATA: self._on_data,
            f.HEADERS: self._on_headers,
            f.CONTINUATION: self._on_continuation,
            f.SETTINGS: self._on_settings,
            f.WINDOW_UPDATE: self._on_window_update,
            f.PING: self._on_ping,
            f.RST_STREAM: self._on_rst_stream,
            f.GOAWAY: self._on_goaway,
            f.PUSH_PROMISE: self._on_push_promise,
        }

    # ---- state seen by the channel ---------------------------------------------------

    @property
    def usable(self) -> bool:
        """Open, not told to go away, with stream ids left."""
        return not self._closing and self._next_id < _LAST_STREAM_ID

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    # ---- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports are not asyncio.Transport subclasses.
        self._transport = transport = cast(asyncio.Transport, transport)
        s = self._settings
        transport.write(
            f.PREFACE
            + f.settings(
                {
                    f.Setting.ENABLE_PUSH: 0,
                    f.Setting.INITIAL_WINDOW_SIZE: s.stream_window,
                    f.Setting.MAX_HEADER_LIST_SIZE: s.max_header_list_bytes,
                }
            )
            # The connection window is credited as bytes arrive; the stream windows are what
            # bound memory, so the connection's is opened as far as it goes.
            + f.window_update(0, f.MAX_WINDOW - _DEFAULT_WINDOW)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        reason = "the connection to the server was lost"
        self._not_ready(reason)
        self._finish(grpc.StatusCode.UNAVAILABLE, reason)

    def data_received(self, data: bytes) -> None:
        if self._probe is not None:
            # Anything from the server shows it is alive.
            self._probe.cancel()
            self._probe = None
        buffer = self._buffer + data if self._buffer else data
        try:
            used = self._frames(buffer)
        except _ProtocolError as error:
            self._fail_connection(error.code, str(error))
            return
        self._buffer = buffer[used:]

    # ---- calls -----------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """At the server's MAX_CONCURRENT_STREAMS: wait_for_slot() before open_stream()."""
        return len(self._streams) >= self._peer_max_streams

    def open_stream(self, header_block: bytes, body: bytes) -> Stream:
        """Send one request (its header block and complete body) on a new stream."""
        transport = self._transport
        if transport is None or not self.usable:
            raise CallFailed(
                grpc.StatusCode.UNAVAILABLE, "the connection is closing", unprocessed=True
            )
        stream_id = self._next_id
        self._next_id += 2
        stream = Stream(stream_id, self._peer_window, self._settings.max_message_bytes)
        self._streams[stream_id] = stream
        if self._table_size_changed:
            # RFC 7541 §4.2: after the peer changes its table size, the next block says the
            # size this encoder uses, which is none.
            header_block = b"\x20" + header_block
            self._table_size_changed = False
        self._send(self._header_frames(stream_id, header_block) + self._data(stream, body))
        return stream

    async def wait_for_slot(self, deadline: float | None) -> None:
        """Wait until the server's stream limit leaves room, or until `deadline` (loop
        time): raises CallFailed DEADLINE_EXCEEDED."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                while len(self._streams) >= self._peer_max_streams and self.usable:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._slot_waiters.append(waiter)
                    await waiter
        except TimeoutError:
            raise CallFailed(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "the deadline passed while the server's stream limit was reached",
            ) from None

    def probe(self) -> None:
        """Check the server is still there (a call on this connection ran out of time): a
        PING, and the connection dropped unless something arrives within ping_timeout_s.
        Without it a server gone without closing (a crashed host, a cut network) would
        hold every later call until its deadline, and never be reconnected."""
        if self._probe is not None or self._transport is None:
            return
        self._send(f.frame(f.PING, 0, 0, b"paynow\x00\x00"))
        self._probe = self._loop.call_later(self._settings.ping_timeout_s, self._unanswered)

    def _unanswered(self) -> None:
        self._probe = None
        self.abort(grpc.StatusCode.UNAVAILABLE, "the server stopped answering (no PING reply)")

    def reset(self, stream: Stream, code: int = f.ErrorCode.CANCEL) -> None:
        """Abandon a stream (cancelled, past its deadline, or a response refused)."""
        if self._streams.pop(stream.id, None) is not None:
            self._blocked.discard(stream)
            self._send(f.rst_stream(stream.id, code))
            self._stream_closed()

    def credit(self, stream: Stream) -> None:
        """Return flow-control credit once the reader has taken messages off `stream`."""
        if (
            stream.uncredited >= self._settings.stream_window // 4
            and stream.queued_bytes < self._settings.stream_window
            and stream.id in self._streams
        ):
            self._send(f.window_update(stream.id, stream.uncredited))
            stream.uncredited = 0

    def close(self) -> None:
        """Stop taking streams; the transport closes when the last one ends."""
        if not self._closing:
            self._closing = True
            self._send(f.goaway(0, f.ErrorCode.NO_ERROR))
            self._notify_closed()
        if not self._streams and self._transport is not None:
            self._flush()
            self._transport.close()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        """Drop the connection now; its calls end with `code`."""
        self._finish(code, details)
        if self._transport is not None:
            self._transport.abort()

    # ---- sending ---------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """Queue frames; they go out together once this pass of the event loop is over.
        The requests of every call started in one pass then cost one send() instead of one
        each, which measured as the biggest part of the client's CPU. Frames for a
        connection already gone are dropped."""
        if self._transport is None:
            return
        if self._outgoing is None:
            self._outgoing = [data]
            self._loop.call_soon(self._flush)
        else:
            self._outgoing.append(data)

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, None
        if outgoing and self._transport is not None:
            self._transport.write(b"".join(outgoing))

    def _header_frames(self, stream_id: int, block: bytes) -> bytes:
        limit = self._peer_max_frame
        if len(block) <= limit:
            return f.frame(f.HEADERS, f.END_HEADERS, stream_id, block)
        parts = [block[i : i + limit] for i in range(0, len(block), limit)]
        out = [f.frame(f.HEADERS, 0, stream_id, parts[0])]
        out += [f.frame(f.CONTINUATION, 0, stream_id, part) for part in parts[1:-1]]
        out.append(f.frame(f.CONTINUATION, f.END_HEADERS, stream_id, parts[-1]))
        return b"".join(out)

    def _data(self, stream: Stream, body: bytes) -> bytes:
        """DATA frames for as much of `body` as the windows allow; the rest waits in
        `stream.unsent` for WINDOW_UPDATE. The last frame ends the stream."""
        out: list[bytes] = []
        while True:
            size = min(len(body), self._send_window, stream.send_window, self._peer_max_frame)
            if size < len(body) and size <= 0:
                stream.unsent = body
                self._blocked.add(stream)
                return b"".join(out)
            if size == len(body):  # the usual case: no copy of the whole body
                chunk, body = body, b""
            else:
                chunk, body = body[:size], body[size:]
            self._send_window -= size
            stream.send_window -= size
            out.append(f.frame(f.DATA, 0 if body else f.END_STREAM, stream.id, chunk))
            if not body:
                stream.unsent = b""
                self._blocked.discard(stream)
                return b"".join(out)

    def _flush_unsent(self) -> None:
        if self._transport is None:
            return
        for stream in list(self._blocked):
            if self._send_window <= 0:
                return
            if stream.id in self._streams:
                self._send(self._data(stream, stream.unsent))
            else:
                self._blocked.discard(stream)

    # ---- receiving -------------------------------------------------------------------

    def _frames(self, buffer: bytes) -> int:
        """Handle every complete frame in `buffer`; the number of bytes used."""
        if not self.ready.done() and len(buffer) >= 9 and buffer[3] != f.SETTINGS:
            raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "the server did not speak HTTP/2")
        position = 0
        size = len(buffer)
        while size - position >= 9:
            length = (buffer[position] << 16) | (buffer[position + 1] << 8) | buffer[position + 2]
            if length > _MAX_FRAME_SIZE:
                raise _ProtocolError(f.ErrorCode.FRAME_SIZE_ERROR, "frame over 16384 bytes")
            end = position + 9 + length
            if end > size:
                break
            kind = buffer[position + 3]
            flags = buffer[position + 4]
            stream_id = _U32.unpack_from(buffer, position + 5)[0] & _STREAM_ID_MASK
            payload = buffer[position + 9 : end]
            position = end
            if self._partial is not None and kind != f.CONTINUATION:
                raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "header block interrupted")
            handler = self._handlers.get(kind)
            # PRIORITY and unknown frame types are ignored (§5.5).
            if handler is not None:
                handler(stream_id, flags, payload)
        return position

    def _on_ping(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id or len(payload) != 8:
            raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "bad PING")
        if not flags & f.ACK:
            self._send(f.frame(f.PING, f.ACK, 0, payload))

    def _on_push_promise(self, stream_id: int, flags: int, payload: bytes) -> None:
        raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "push is disabled")

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if flags & f.PADDED:
            if not payload or payload[0] >= len(payload):
                raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "bad padding")
            return payload[1 : len(payload) - payload[0]]
        return payload

    def _on_data(self, stream_id: int, flags: int, payload: bytes) -> None:
        if not stream_id:
            raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        # Credit the connection at once, for every stream (even one already reset).
        self._recv_uncredited += len(payload)
        if self._recv_uncredited >= 1 << 24:
            self._send(f.window_update(0, self._recv_uncredited))
            self._recv_uncredited = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if stream.headers is None:
            self._reset_with(stream, grpc.StatusCode.INTERNAL, "DATA before the headers")
            return
        stream.uncredited += len(payload)
        data = self._unpad(flags, payload)
        if data:
            stream.on_data(data)
        if stream.failure is not None:
            self.reset(stream)
            return
        if flags & f.END_STREAM:
            stream.on_end_without_trailers()
            self._end(stream)
        else:
            self.credit(stream)

    def _on_headers(self, stream_id: int, flags: int, payload: bytes) -> None:
        if not stream_id:
            raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = self._unpad(flags, payload)
        if flags & f.PRIORITY_FLAG:
            block = block[5:]
        if flags & f.END_HEADERS:
            self._header_block(stream_id, flags, block)
        else:
            self._partial = (stream_id, flags, [block])

    def _on_continuation(self, stream_id: int, flags: int, payload: bytes) -> None:
        partial = self._partial
        if partial is None or partial[0] != stream_id:
            raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
        partial[2].append(payload)
        if sum(map(len, partial[2])) > 2 * self._settings.max_header_list_bytes:
            raise _ProtocolError(f.ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
        if flags & f.END_HEADERS:
            self._partial = None
            self._header_block(stream_id, partial[1], b"".join(partial[2]))

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        fields = self._decode(block)
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        end_stream = bool(flags & f.END_STREAM)
        if stream.headers is None:
            status = next((v for k, v in fields if k == b":status"), None)
            if status != b"200":
                code = http_status_code(status)
                self._reset_with(stream, code, f"the server answered HTTP {status!r}")
                return
            content_type = next((v for k, v in fields if k == b"content-type"), b"")
            if not content_type.startswith(b"application/grpc"):
                self._reset_with(
                    stream, grpc.StatusCode.UNKNOWN, f"the server answered {content_type!r}"
                )
                return
        elif not end_stream:
            self._reset_with(stream, grpc.StatusCode.INTERNAL, "trailers did not end the stream")
            return
        stream.on_headers(list(fields), end_stream)
        if end_stream:
            self._end(stream)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The fields of a header block. Decoded whatever the stream's state: the peer's
        dynamic table must stay in step.

        A block that leaves the dynamic table as it was (indexed fields and literals not
        indexed: what a gRPC server's headers and trailers become once its table is warm)
        decodes the same way until the table changes, so its fields are remembered until a
        block changes the table; that skips the decoder's work on most calls.
        """
        fields = self._remembered.get(block)
        if fields is not None:
            return fields
        table = self._decoder.header_table
        before = (table.maxsize, tuple(table.dynamic_entries))
        try:
            fields = [(bytes(k), bytes(v)) for k, v in self._decoder.decode(block, raw=True)]
        except hpack.HPACKError as error:
            raise _ProtocolError(f.ErrorCode.COMPRESSION_ERROR, f"header block: {error}") from None
        if before == (table.maxsize, tuple(table.dynamic_entries)):
            if len(self._remembered) >= _BLOCKS_REMEMBERED:
                self._remembered.clear()
            self._remembered[block] = fields
        else:
            self._remembered.clear()
        return fields

    def _on_settings(self, stream_id: int, flags: int, payload: bytes) -> None:
        if stream_id or len(payload) % 6:
            raise _ProtocolError(f.ErrorCode.FRAME_SIZE_ERROR, "bad SETTINGS")
        if flags & f.ACK:
            return
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            if key == f.Setting.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise _ProtocolError(f.ErrorCode.FLOW_CONTROL_ERROR, "window too large")
                delta = value - self._peer_window
                self._peer_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif key == f.Setting.MAX_FRAME_SIZE:
                if not _MAX_FRAME_SIZE <= value <= 2**24 - 1:
                    raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "bad MAX_FRAME_SIZE")
                self._peer_max_frame = value
            elif key == f.Setting.MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value
            elif key == f.Setting.HEADER_TABLE_SIZE:
                self._table_size_changed = True
        self._send(f.frame(f.SETTINGS, f.ACK, 0))
        if not self.ready.done():
            self.ready.set_result(None)
        self._flush_unsent()
        self._wake_slot_waiters()

    def _on_window_update(self, stream_id: int, flags: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ProtocolError(f.ErrorCode.FRAME_SIZE_ERROR, "bad WINDOW_UPDATE")
        increment = _U32.unpack(payload)[0] & _STREAM_ID_MASK
        if stream_id == 0:
            if not increment:
                raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "zero WINDOW_UPDATE")
            self._send_window += increment
            if self._send_window > f.MAX_WINDOW:
                raise _ProtocolError(f.ErrorCode.FLOW_CONTROL_ERROR, "window over 2^31-1")
            self._flush_unsent()
            return
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.send_window += increment
            if stream.unsent:
                self._send(self._data(stream, stream.unsent))

    def _on_rst_stream(self, stream_id: int, flags: int, payload: bytes) -> None:
        if len(payload) != 4 or not stream_id:
            raise _ProtocolError(f.ErrorCode.PROTOCOL_ERROR, "bad RST_STREAM")
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self._blocked.discard(stream)
        reason = _U32.unpack(payload)[0]
        code = _RESET_CODES.get(reason, grpc.StatusCode.INTERNAL)
        stream.fail(
            code,
            f"the server reset the stream (HTTP/2 error {reason})",
            unprocessed=reason == f.ErrorCode.REFUSED_STREAM,
        )
        self._stream_closed()

    def _on_goaway(self, stream_id: int, flags: int, payload: bytes) -> None:
        if len(payload) < 8:
            raise _ProtocolError(f.ErrorCode.FRAME_SIZE_ERROR, "bad GOAWAY")
        last_id, _code = _TWO_U32.unpack_from(payload)
        last_id &= _STREAM_ID_MASK
        self._closing = True
        # Streams after last_id were never processed: safe to send again elsewhere.
        for stream in [s for s in self._streams.values() if s.id > last_id]:
            del self._streams[stream.id]
            self._blocked.discard(stream)
            stream.fail(
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down the connection",
                unprocessed=True,
            )
        self._notify_closed()
        self._wake_slot_waiters()
        if not self._streams and self._transport is not None:
            self._flush()
            self._transport.close()

    # ---- endings ---------------------------------------------------------------------

    def _reset_with(self, stream: Stream, code: grpc.StatusCode, details: str) -> None:
        stream.fail(code, details)
        self.reset(stream)

    def _end(self, stream: Stream) -> None:
        if self._streams.pop(stream.id, None) is not None:
            if stream in self._blocked:
                # Answered before the whole request went out: stop sending the rest.
                self._blocked.discard(stream)
                self._send(f.rst_stream(stream.id, f.ErrorCode.CANCEL))
            self._stream_closed()

    def _stream_closed(self) -> None:
        if self._slot_waiters:
            self._wake_slot_waiters()
        if self._closing and not self._streams and self._transport is not None:
            self._flush()
            self._transport.close()

    def _wake_slot_waiters(self) -> None:
        waiters, self._slot_waiters = self._slot_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail_connection(self, code: int, message: str) -> None:
        if self._transport is not None:
            # A client's GOAWAY names the last stream the server opened: none.
            self._send(f.goaway(0, code))
            self._flush()
            self._transport.close()
        self._not_ready(message)
        self._finish(grpc.StatusCode.UNAVAILABLE, f"HTTP/2 error from the server: {message}")

    def _finish(self, code: grpc.StatusCode, details: str) -> None:
        self._closing = True
        streams, self._streams = self._streams, {}
        self._blocked.clear()
        for stream in streams.values():
            stream.fail(code, details)
        self._wake_slot_waiters()
        self._notify_closed()

    def _not_ready(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            # Retrieved here: a connect attempt that gave up no longer awaits it.
            self.ready.exception()

    def _notify_closed(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)

"""One gRPC call's HTTP/2 stream, as the connection fills it and the call reads it."""

from __future__ import annotations

import asyncio
from collections import deque

import grpc

__all__ = ["CallFailed", "Stream"]

_PREFIX_BYTES = 5


class CallFailed(Exception):
    """A call ended without a server's status: `code` and `details` say why.

    `unprocessed` is True when the request certainly reached no handler (refused stream,
    GOAWAY before it, no connection), so sending it again cannot apply it twice.
    """

    def __init__(self, code: grpc.StatusCode, details: str, *, unprocessed: bool = False):
        super().__init__(details)
        self.code = code
        self.details = details
        self.unprocessed = unprocessed


class Stream:
    """The response side of one stream: headers, length-prefixed messages, trailers.

    The connection feeds it; the call waits on `changed()` and reads `messages`. Messages
    waiting to be read hold back flow-control credit (`queued_bytes`), so a slow reader of a
    server stream slows the server instead of filling memory.
    """

    __slots__ = (
        "_buffer",
        "_waiter",
        "failure",
        "headers",
        "id",
        "max_message_bytes",
        "messages",
        "queued_bytes",
        "send_window",
        "trailers",
        "uncredited",
        "unsent",
    )

    def __init__(self, stream_id: int, send_window: int, max_message_bytes: int) -> None:
        self.id = stream_id
        self.send_window = send_window
        self.max_message_bytes = max_message_bytes
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.failure: CallFailed | None = None
        self.messages: deque[bytes] = deque()
        self.queued_bytes = 0
        self.uncredited = 0
        # Request bytes the send windows have not let out yet (sent on WINDOW_UPDATE).
        self.unsent = b""
        self._buffer = b""
        self._waiter: asyncio.Future[None] | None = None

    @property
    def ended(self) -> bool:
        return self.trailers is not None or self.failure is not None

    def changed(self) -> asyncio.Future[None]:
        """A future done at the next header block, message, end or failure."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_data(self, data: bytes) -> None:
        """Bytes of the response body: split into messages (a 1-byte compressed flag and a
        4-byte length before each)."""
        buffer = self._buffer + data if self._buffer else data
        start = 0
        size = len(buffer)
        added = False
        while size - start >= _PREFIX_BYTES:
            length = int.from_bytes(buffer[start + 1 : start + 5], "big")
            if buffer[start]:
                self.fail(
                    grpc.StatusCode.INTERNAL,
                    "the server sent a compressed message; only identity was accepted",
                )
                return
            if length > self.max_message_bytes:
                self.fail(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the response message is {length} bytes, over the limit of "
                    f"{self.max_message_bytes}",
                )
                return
            end = start + _PREFIX_BYTES + length
            if end > size:
                break
            self.messages.append(buffer[start + _PREFIX_BYTES : end])
            self.queued_bytes += end - start
            start = end
            added = True
        self._buffer = buffer[start:] if start else buffer
        if added:
            self._wake()

    def on_headers(self, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        if self.headers is None and not end_stream:
            self.headers = fields
        else:
            if self._buffer:
                self.fail(grpc.StatusCode.INTERNAL, "the response ended inside a message")
                return
            self.trailers = fields
        self._wake()

    def on_end_without_trailers(self) -> None:
        self.fail(grpc.StatusCode.UNKNOWN, "the server ended the stream without a status")

    def fail(self, code: grpc.StatusCode, details: str, *, unprocessed: bool = False) -> None:
        if not self.ended:
            self.failure = CallFailed(code, details, unprocessed=unprocessed)
            self._wake()

    def take(self) -> bytes:
        """The next message (call only when `messages` is not empty)."""
        message = self.messages.popleft()
        self.queued_bytes -= len(message) + _PREFIX_BYTES
        return message

"""The edge's gRPC client against a hand-written HTTP/2 server that answers with crafted
frames: the protocol cases a real grpc server does not produce on demand."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import hpack
import pytest

from services.edge.grpc_client import Channel, ConnectionSettings
from services.edge.grpc_client import frames as f

# Every read is bounded: a client that stops talking fails the test instead of hanging it.
_WAIT_S = 10.0
_PATH = "/test.Echo/Unary"
_OK_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


def _message(body: bytes, *, compressed: bool = False) -> bytes:
    """One gRPC length-prefixed message."""
    return bytes((int(compressed),)) + struct.pack(">L", len(body)) + body


@dataclasses.dataclass
class Frame:
    kind: int
    flags: int
    stream_id: int
    payload: bytes


@dataclasses.dataclass
class Request:
    stream_id: int
    headers: list[tuple[bytes, bytes]]
    raw_block: bytes
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def message(self) -> bytes:
        assert self.body[0] == 0
        assert int.from_bytes(self.body[1:5], "big") == len(self.body) - 5
        return self.body[5:]


class Peer:
    """One connection accepted by the fake server: reads the client's frames (assembling its
    requests) and writes whatever the test's script crafts."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        self.index = index  # 0 for the server's first connection, 1 for the next...
        self.reader = reader
        self.writer = writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.frames: list[Frame] = []
        self.requests: list[Request] = []
        self._taken = 0
        self._open: dict[int, Request] = {}
        self._block: tuple[int, int, bytes] | None = None

    # ---- reading -----------------------------------------------------------------------

    async def read_preface(self) -> None:
        preface = await asyncio.wait_for(self.reader.readexactly(len(f.PREFACE)), _WAIT_S)
        assert preface == f.PREFACE

    async def handshake(self, settings: dict[int, int] | None = None) -> None:
        """Read the client's preface and send the server's SETTINGS."""
        await self.read_preface()
        self.send(f.settings(settings or {}))

    async def read_frame(self, wait_s: float = _WAIT_S) -> Frame:
        head = await asyncio.wait_for(self.reader.readexactly(9), wait_s)
        length = int.from_bytes(head[:3], "big")
        payload = await asyncio.wait_for(self.reader.readexactly(length), _WAIT_S)
        frame = Frame(head[3], head[4], int.from_bytes(head[5:], "big") & 0x7FFFFFFF, payload)
        self.frames.append(frame)
        self._assemble(frame)
        return frame

    def _assemble(self, frame: Frame) -> None:
        if frame.kind == f.HEADERS:
            self._block = (frame.stream_id, frame.flags, frame.payload)
        elif frame.kind == f.CONTINUATION:
            assert self._block is not None
            stream_id, flags, block = self._block
            self._block = (stream_id, flags, block + frame.payload)
        elif frame.kind == f.DATA and frame.stream_id in self._open:
            request = self._open[frame.stream_id]
            request.body += frame.payload
            if frame.flags & f.END_STREAM:
                self.requests.append(self._open.pop(frame.stream_id))
        if frame.kind in (f.HEADERS, f.CONTINUATION) and frame.flags & f.END_HEADERS:
            assert self._block is not None
            stream_id, flags, block = self._block
            self._block = None
            fields = [(bytes(k), bytes(v)) for k, v in self.decoder.decode(block, raw=True)]
            request = Request(stream_id, fields, block)
            if flags & f.END_STREAM:
                self.requests.append(request)
            else:
                self._open[stream_id] = request

    async def request(self) -> Request:
        """The next complete request (headers and a body ended by END_STREAM)."""
        while self._taken == len(self.requests):
            await self.read_frame()
        self._taken += 1
        return self.requests[self._taken - 1]

    async def frame_matching(self, predicate: Callable[[Frame], bool]) -> Frame:
        """The first frame, read already or still to come, that matches."""
        for frame in self.frames:
            if predicate(frame):
                return frame
        while True:
            frame = await self.read_frame()
            if predicate(frame):
                return frame

    async def quiet_for(self, seconds: float) -> list[Frame]:
        """The frames that arrive in the next `seconds` (nothing, if the client waits)."""
        frames: list[Frame] = []
        try:
            while True:
                frames.append(await self.read_frame(wait_s=seconds))
        except TimeoutError:
            return frames

    async def linger(self) -> None:
        """Keep the connection open, reading, until the client closes it."""
        try:
            while True:
                await self.read_frame()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    # ---- writing -----------------------------------------------------------------------

    def send(self, *data: bytes) -> None:
        self.writer.write(b"".join(data))

    def block(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        return bytes(self.encoder.encode(fields))

    def headers(
        self, stream_id: int, fields: list[tuple[bytes, bytes]], *, end_stream: bool = False
    ) -> bytes:
        flags = f.END_HEADERS | (f.END_STREAM if end_stream else 0)
        return f.frame(f.HEADERS, flags, stream_id, self.block(fields))

    def trailers(self, stream_id: int, status: bytes = b"0", message: bytes = b"") -> bytes:
        fields = [(b"grpc-status", status)] + ([(b"grpc-message", message)] if message else [])
        return self.headers(stream_id, fields, end_stream=True)

    def reply(self, stream_id: int, body: bytes) -> bytes:
        """A complete OK response with one message."""
        return (
            self.headers(stream_id, _OK_HEADERS)
            + f.frame(f.DATA, 0, stream_id, _message(body))
            + self.trailers(stream_id)
        )


Script = Callable[[Peer], Awaitable[None]]


class FakeServer:
    """Runs `script` on every accepted connection (the nth connection is `peers[n]`)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        peer = Peer(reader, writer, len(self.peers))
        self.peers.append(peer)
        try:
            await self.script(peer)
        except Exception as error:
            self.errors.append(error)
        finally:
            writer.close()

    @property
    def requests(self) -> list[Request]:
        return [r for peer in self.peers for r in peer.requests]

    async def stop(self) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=_WAIT_S)
        for task in self.tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()


Serve = Callable[..., Awaitable[tuple[FakeServer, Channel]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts a fake server running `script` and a Channel to it; checks the script raised
    nothing once the channel is closed."""
    made: list[tuple[FakeServer, Channel]] = []

    async def _serve(script: Script, **channel_options: Any) -> tuple[FakeServer, Channel]:
        server = FakeServer(script)
        await server.start()
        made.append((server, Channel(f"127.0.0.1:{server.port}", **channel_options)))
        return made[-1]

    yield _serve
    for server, channel in made:
        await channel.close()
        await server.stop()
        assert not server.errors, server.errors


async def _call(channel: Channel, request: bytes = b"ping", **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", _WAIT_S)
    return await asyncio.wait_for(channel.unary_unary(_PATH)(request, **kwargs), _WAIT_S)


async def _error(channel: Channel, request: bytes = b"ping", **kwargs: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, request, **kwargs)
    return raised.value


async def _answer_each(peer: Peer, answer: Callable[[Peer, Request], None]) -> None:
    """Handshake, then answer every request the connection brings, until it closes."""
    await peer.handshake()
    try:
        while True:
            answer(peer, await peer.request())
    except (asyncio.IncompleteReadError, ConnectionError):
        return


def _echo(peer: Peer, request: Request) -> None:
    peer.send(peer.reply(request.stream_id, request.message))


# ---- the request as sent -----------------------------------------------------------------


async def test_the_request_is_grpc_over_http2_as_specified(serve: Serve) -> None:
    """Preface, SETTINGS without push, then HEADERS with gRPC's fields and one message."""
    server, channel = await serve(lambda peer: _answer_each(peer, _echo))
    method = channel.unary_unary(_PATH)
    call = method(b"hello", timeout=5, metadata=[("x-key", "v"), ("x-raw-bin", b"\xff\x00")])
    assert await asyncio.wait_for(call, _WAIT_S) == b"hello"

    peer = server.peers[0]
    settings = next(fr for fr in peer.frames if fr.kind == f.SETTINGS and not fr.flags)
    values = dict(struct.iter_unpack(">HL", settings.payload))
    assert values[f.Setting.ENABLE_PUSH] == 0
    [request] = server.requests
    assert request.stream_id == 1
    assert request.headers[:2] == [(b":method", b"POST"), (b":scheme", b"http")]
    assert request.header(b":path") == _PATH.encode()
    assert request.header(b":authority") == b"127.0.0.1:%d" % server.port
    assert request.header(b"content-type") == b"application/grpc"
    assert request.header(b"te") == b"trailers"
    timeout = request.header(b"grpc-timeout")
    assert timeout is not None
    assert timeout.endswith(b"m")
    assert 0 < int(timeout[:-1]) <= 5000
    assert request.header(b"x-key") == b"v"
    assert request.header(b"x-raw-bin") == b"/wA"  # base64 without padding
    assert request.message == b"hello"


async def test_a_large_request_header_block_is_split_into_continuation_frames(
    serve: Serve,
) -> None:
    """Metadata beyond one 16 KiB frame goes as HEADERS + CONTINUATION, joined intact."""
    server, channel = await serve(lambda peer: _answer_each(peer, _echo))
    assert await _call(channel, metadata=[("x-big", "v" * 40_000)]) == b"ping"
    peer = server.peers[0]
    block_frames = [fr for fr in peer.frames if fr.kind in (f.HEADERS, f.CONTINUATION)]
    assert [fr.kind for fr in block_frames] == [f.HEADERS, f.CONTINUATION, f.CONTINUATION]
    assert [bool(fr.flags & f.END_HEADERS) for fr in block_frames] == [False, False, True]
    assert all(len(fr.payload) <= 16_384 for fr in block_frames)
    assert server.requests[0].header(b"x-big") == b"v" * 40_000


# ---- responses that are not gRPC ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([(b":status", b"503")], grpc.StatusCode.UNAVAILABLE),
        ([(b":status", b"404"), (b"content-type", b"text/plain")], grpc.StatusCode.UNIMPLEMENTED),
        ([(b":status", b"401")], grpc.StatusCode.UNAUTHENTICATED),
        ([(b":status", b"500")], grpc.StatusCode.UNKNOWN),
        ([(b":status", b"200"), (b"content-type", b"text/html")], grpc.StatusCode.UNKNOWN),
        ([(b":status", b"200")], grpc.StatusCode.UNKNOWN),
    ],
)
async def test_a_response_that_is_not_grpc_maps_its_http_status(
    serve: Serve, fields: list[tuple[bytes, bytes]], code: grpc.StatusCode
) -> None:
    """Without a gRPC response, the HTTP status decides the code; the call is not retried."""

    def answer(peer: Peer, request: Request) -> None:
        peer.send(
            peer.headers(request.stream_id, fields),
            f.frame(f.DATA, f.END_STREAM, request.stream_id, b"<html>nope</html>"),
        )

    server, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert (await _error(channel)).code() is code
    assert len(server.requests) == 1


async def test_a_trailers_only_response_gives_its_status(serve: Serve) -> None:
    """One HEADERS frame with END_STREAM: code and message from it, metadata as trailing."""

    def answer(peer: Peer, request: Request) -> None:
        fields = [
            *_OK_HEADERS,
            (b"grpc-status", b"7"),
            (b"grpc-message", b"not%20yours%20%E2%9C%8B"),
            (b"x-why", b"owner"),
        ]
        peer.send(peer.headers(request.stream_id, fields, end_stream=True))

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    call = channel.unary_unary(_PATH)(b"x", timeout=_WAIT_S)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call, _WAIT_S)
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == "not yours ✋"
    assert dict(raised.value.trailing_metadata()) == {"x-why": "owner"}
    assert await call.initial_metadata() == ()


async def test_data_ending_the_stream_without_trailers_is_unknown(serve: Serve) -> None:
    """A response body ended by END_STREAM on DATA carries no status: UNKNOWN."""

    def answer(peer: Peer, request: Request) -> None:
        peer.send(
            peer.headers(request.stream_id, _OK_HEADERS),
            f.frame(f.DATA, f.END_STREAM, request.stream_id, _message(b"reply")),
        )

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert (await _error(channel)).code() is grpc.StatusCode.UNKNOWN


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # The trailers come inside a message: the body is cut short.
        (
            lambda p, s: [p.headers(s, _OK_HEADERS), f.frame(f.DATA, 0, s, _message(b"12345")[:7])],
            grpc.StatusCode.INTERNAL,
        ),
        # Two messages for a unary call.
        (
            lambda p, s: [p.headers(s, _OK_HEADERS), f.frame(f.DATA, 0, s, _message(b"a") * 2)],
            grpc.StatusCode.INTERNAL,
        ),
        # A compressed message, though only identity was offered.
        (
            lambda p, s: [
                p.headers(s, _OK_HEADERS),
                f.frame(f.DATA, 0, s, _message(b"x", compressed=True)),
            ],
            grpc.StatusCode.INTERNAL,
        ),
        # No message at all.
        (lambda p, s: [p.headers(s, _OK_HEADERS)], grpc.StatusCode.INTERNAL),
        # DATA before any HEADERS.
        (lambda p, s: [f.frame(f.DATA, 0, s, _message(b"x"))], grpc.StatusCode.INTERNAL),
        # A second header block that does not end the stream.
        (
            lambda p, s: [p.headers(s, _OK_HEADERS), p.headers(s, [(b"x-more", b"1")])],
            grpc.StatusCode.INTERNAL,
        ),
    ],
)
async def test_a_malformed_grpc_response_fails_the_call(
    serve: Serve, frames: Callable[[Peer, int], list[bytes]], code: grpc.StatusCode
) -> None:
    """Malformed bodies and header sequences end the call with INTERNAL, never a reply."""

    def answer(peer: Peer, request: Request) -> None:
        peer.send(*frames(peer, request.stream_id), peer.trailers(request.stream_id))

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert (await _error(channel)).code() is code


# ---- framing variants ---------------------------------------------------------------------


async def test_header_blocks_split_over_continuation_frames_are_joined(serve: Serve) -> None:
    """HEADERS + CONTINUATION (for the headers and for the trailers) decode as one block."""

    def answer(peer: Peer, request: Request) -> None:
        s = request.stream_id
        block = peer.block([*_OK_HEADERS, (b"x-split", b"v" * 3000)])
        a, b = len(block) // 3, 2 * len(block) // 3
        trailers = peer.block([(b"grpc-status", b"0"), (b"x-end", b"done")])
        peer.send(
            f.frame(f.HEADERS, 0, s, block[:a]),
            f.frame(f.CONTINUATION, 0, s, block[a:b]),
            f.frame(f.CONTINUATION, f.END_HEADERS, s, block[b:]),
            f.frame(f.DATA, 0, s, _message(request.message)),
            f.frame(f.HEADERS, f.END_STREAM, s, trailers[:3]),
            f.frame(f.CONTINUATION, f.END_HEADERS, s, trailers[3:]),
        )

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    call = channel.unary_unary(_PATH)(b"split", timeout=_WAIT_S)
    assert await asyncio.wait_for(call, _WAIT_S) == b"split"
    assert dict(await call.initial_metadata()) == {"x-split": "v" * 3000}
    assert dict(await call.trailing_metadata()) == {"x-end": "done"}


async def test_padded_and_prioritised_frames_are_read_without_their_padding(
    serve: Serve,
) -> None:
    """PADDED DATA and HEADERS (also with PRIORITY) yield exactly their content."""

    def answer(peer: Peer, request: Request) -> None:
        s = request.stream_id
        headers = bytes((7,)) + struct.pack(">LB", 0, 16) + peer.block(_OK_HEADERS) + b"\0" * 7
        body = _message(request.message)
        trailers = bytes((3,)) + peer.block([(b"grpc-status", b"0")]) + b"\0" * 3
        peer.send(
            f.frame(f.HEADERS, f.END_HEADERS | f.PADDED | f.PRIORITY_FLAG, s, headers),
            f.frame(f.DATA, f.PADDED, s, bytes((200,)) + body[:4] + b"\0" * 200),
            f.frame(f.DATA, f.PADDED, s, bytes((0,)) + body[4:]),
            f.frame(f.DATA, f.PADDED, s, bytes((5,)) + b"\0" * 5),  # padding only
            f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM | f.PADDED, s, trailers),
        )

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert await _call(channel, b"padded \x00 body") == b"padded \x00 body"


async def test_priority_and_unknown_frames_are_ignored(serve: Serve) -> None:
    """PRIORITY frames and frame types this client does not know change nothing (§5.5)."""

    def answer(peer: Peer, request: Request) -> None:
        s = request.stream_id
        peer.send(
            f.frame(0x2, 0, s, struct.pack(">LB", 0, 1)),
            f.frame(0xFA, 0xFF, 0, b"extension"),
            peer.headers(s, _OK_HEADERS),
            f.frame(0xFB, 0, s, b""),
            f.frame(f.DATA, 0, s, _message(request.message)),
            peer.trailers(s),
        )

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert await _call(channel, b"ignored") == b"ignored"


async def test_the_decoder_keeps_the_dynamic_table_across_reset_streams(serve: Serve) -> None:
    """Headers for a stream the client already abandoned are still decoded, so the next
    response's references into the server's table resolve to the right fields."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        first = await peer.request()
        await peer.frame_matching(lambda fr: fr.kind == f.RST_STREAM)
        # Late headers for the reset stream; the encoder adds x-table to its table.
        peer.send(peer.headers(first.stream_id, [*_OK_HEADERS, (b"x-table", b"entry-1")]))
        second = await peer.request()
        block = peer.block([*_OK_HEADERS, (b"x-table", b"entry-1")])
        assert len(block) <= 3  # all three fields are indexed references now
        peer.send(
            f.frame(f.HEADERS, f.END_HEADERS, second.stream_id, block),
            f.frame(f.DATA, 0, second.stream_id, _message(second.message)),
            peer.trailers(second.stream_id),
        )
        await peer.linger()

    _, channel = await serve(script)
    assert (await _error(channel, timeout=0.3)).code() is grpc.StatusCode.DEADLINE_EXCEEDED
    call = channel.unary_unary(_PATH)(b"second", timeout=_WAIT_S)
    assert await asyncio.wait_for(call, _WAIT_S) == b"second"
    assert dict(await call.initial_metadata()) == {"x-table": "entry-1"}


async def test_a_changed_header_table_size_is_acknowledged_in_the_next_block(
    serve: Serve,
) -> None:
    """After the server's SETTINGS_HEADER_TABLE_SIZE, the next request's block starts with
    a dynamic table size update (RFC 7541 §4.2), which the server's decoder accepts."""

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.HEADER_TABLE_SIZE: 256})
        first = await peer.request()
        peer.send(peer.reply(first.stream_id, first.message))
        second = await peer.request()
        peer.send(peer.reply(second.stream_id, second.message))
        await peer.linger()

    server, channel = await serve(script)
    assert await _call(channel, b"one") == b"one"
    assert await _call(channel, b"two") == b"two"
    first, second = server.requests
    assert first.raw_block.startswith(b"\x20")  # size update to 0: no table is used
    assert not second.raw_block.startswith(b"\x20")


# ---- flow control of the request ------------------------------------------------------------


def _data_bytes(frames: list[Frame]) -> int:
    return sum(len(fr.payload) for fr in frames if fr.kind == f.DATA)


async def test_the_request_body_waits_for_the_stream_window(serve: Serve) -> None:
    """With a 1000-byte stream window the client sends 1000 bytes, then the rest only after
    WINDOW_UPDATE; the body arrives intact."""
    body = bytes(range(256)) * 20  # 5120 bytes + the 5-byte prefix

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.INITIAL_WINDOW_SIZE: 1000})
        await peer.frame_matching(lambda fr: _data_bytes(peer.frames) >= 1000)
        assert _data_bytes(await peer.quiet_for(0.2)) == 0
        assert _data_bytes(peer.frames) == 1000
        peer.send(f.window_update(1, 2000))
        await peer.frame_matching(lambda fr: _data_bytes(peer.frames) >= 3000)
        assert _data_bytes(await peer.quiet_for(0.2)) == 0
        peer.send(f.window_update(1, 10_000))
        request = await peer.request()
        assert all(len(fr.payload) <= 16_384 for fr in peer.frames)
        peer.send(peer.reply(request.stream_id, request.message[::-1]))
        await peer.linger()

    _, channel = await serve(script)
    assert await _call(channel, body) == body[::-1]


async def test_the_request_body_waits_for_the_connection_window(serve: Serve) -> None:
    """With a large stream window, the connection's 65535 bytes are the limit until the
    server opens it with WINDOW_UPDATE on stream 0."""
    body = b"c" * 100_000

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.INITIAL_WINDOW_SIZE: 1 << 20})
        await peer.frame_matching(lambda fr: _data_bytes(peer.frames) >= 65_535)
        assert _data_bytes(await peer.quiet_for(0.2)) == 0
        peer.send(f.window_update(0, 1 << 20))
        request = await peer.request()
        peer.send(peer.reply(request.stream_id, b"%d" % len(request.message)))
        await peer.linger()

    _, channel = await serve(script)
    assert await _call(channel, body) == b"100000"


async def test_a_larger_initial_window_releases_a_waiting_request(serve: Serve) -> None:
    """SETTINGS raising INITIAL_WINDOW_SIZE mid-request lets the rest of the body go."""
    body = b"w" * 500

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.INITIAL_WINDOW_SIZE: 100})
        await peer.frame_matching(lambda fr: _data_bytes(peer.frames) >= 100)
        peer.send(f.settings({f.Setting.INITIAL_WINDOW_SIZE: 65_535}))
        request = await peer.request()
        peer.send(peer.reply(request.stream_id, request.message))
        await peer.linger()

    _, channel = await serve(script)
    assert await _call(channel, body) == body


# ---- streams refused, limited, reset -------------------------------------------------------


async def test_a_refused_stream_is_retried_on_a_new_stream(serve: Serve) -> None:
    """RST_STREAM(REFUSED_STREAM) means the server never handled it: sent again, answered."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        first = await peer.request()
        peer.send(f.rst_stream(first.stream_id, f.ErrorCode.REFUSED_STREAM))
        second = await peer.request()
        peer.send(peer.reply(second.stream_id, second.message))
        await peer.linger()

    server, channel = await serve(script)
    assert await _call(channel, b"again") == b"again"
    assert [r.stream_id for r in server.requests] == [1, 3]


@pytest.mark.parametrize(
    ("error_code", "code"),
    [
        (f.ErrorCode.CANCEL, grpc.StatusCode.CANCELLED),
        (f.ErrorCode.ENHANCE_YOUR_CALM, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (f.ErrorCode.PROTOCOL_ERROR, grpc.StatusCode.INTERNAL),
        (f.ErrorCode.INTERNAL_ERROR, grpc.StatusCode.INTERNAL),
    ],
)
async def test_a_reset_stream_fails_the_call_once(
    serve: Serve, error_code: int, code: grpc.StatusCode
) -> None:
    """Other RST_STREAM codes map to their gRPC codes and are not retried."""

    def answer(peer: Peer, request: Request) -> None:
        peer.send(peer.headers(request.stream_id, _OK_HEADERS))
        peer.send(f.rst_stream(request.stream_id, error_code))

    server, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert (await _error(channel)).code() is code
    assert len(server.requests) == 1


async def test_the_servers_stream_limit_holds_calls_back(serve: Serve) -> None:
    """MAX_CONCURRENT_STREAMS 1: a second call is sent only once the first ends, and a call
    that waits for a slot past its deadline is DEADLINE_EXCEEDED, never sent."""
    first_seen = asyncio.Event()
    release = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.MAX_CONCURRENT_STREAMS: 1})
        first = await peer.request()
        first_seen.set()
        await asyncio.wait_for(release.wait(), _WAIT_S)
        assert len([fr for fr in peer.frames if fr.kind == f.HEADERS]) == 1
        peer.send(peer.reply(first.stream_id, first.message))
        second = await peer.request()
        peer.send(peer.reply(second.stream_id, second.message))
        await peer.linger()

    server, channel = await serve(script)
    first = asyncio.ensure_future(_call(channel, b"first", timeout=None))
    await asyncio.wait_for(first_seen.wait(), _WAIT_S)
    started = time.monotonic()
    assert (await _error(channel, b"late", timeout=0.3)).code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    second = asyncio.ensure_future(_call(channel, b"second"))
    release.set()
    assert await asyncio.wait_for(first, _WAIT_S) == b"first"
    assert await asyncio.wait_for(second, _WAIT_S) == b"second"
    assert [r.message for r in server.requests] == [b"first", b"second"]


async def test_grpc_timeout_counts_the_time_spent_waiting_for_a_slot(serve: Serve) -> None:
    """A call held back by MAX_CONCURRENT_STREAMS sends the time it has left, not its timeout."""
    first_seen = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.MAX_CONCURRENT_STREAMS: 1})
        first = await peer.request()
        first_seen.set()
        await asyncio.sleep(0.6)  # the second call waits this long for the slot
        peer.send(peer.reply(first.stream_id, first.message))
        second = await peer.request()
        peer.send(peer.reply(second.stream_id, second.header(b"grpc-timeout") or b""))
        await peer.linger()

    _, channel = await serve(script)
    first = asyncio.ensure_future(_call(channel, b"first", timeout=None))
    await asyncio.wait_for(first_seen.wait(), _WAIT_S)
    sent_timeout = await _call(channel, b"second", timeout=2.0)
    assert await asyncio.wait_for(first, _WAIT_S) == b"first"
    assert sent_timeout.endswith(b"m")
    assert int(sent_timeout[:-1]) <= 1500


async def test_a_deadline_resets_the_stream_with_cancel(serve: Serve) -> None:
    """At the deadline the client sends RST_STREAM(CANCEL) for the call's stream."""
    codes: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        request = await peer.request()
        reset = await peer.frame_matching(lambda fr: fr.kind == f.RST_STREAM)
        assert reset.stream_id == request.stream_id
        codes.append(int.from_bytes(reset.payload, "big"))
        await peer.linger()

    server, channel = await serve(script)
    started = time.monotonic()
    assert (await _error(channel, timeout=0.3)).code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    await asyncio.wait_for(channel.close(), _WAIT_S)
    await server.stop()
    assert codes == [f.ErrorCode.CANCEL]


# ---- connection-level events -------------------------------------------------------------


async def test_goaway_before_the_calls_stream_retries_it_on_a_new_connection(
    serve: Serve,
) -> None:
    """GOAWAY with a last stream id below the call's: never processed, so sent again on a
    new connection, and answered there."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        request = await peer.request()
        if peer.index == 0:
            peer.send(f.goaway(request.stream_id - 1, f.ErrorCode.NO_ERROR))
        else:
            peer.send(peer.reply(request.stream_id, request.message))
        await peer.linger()

    server, channel = await serve(script)
    assert await _call(channel, b"moved") == b"moved"
    assert len(server.peers) == 2
    assert [len(p.requests) for p in server.peers] == [1, 1]


async def test_goaway_at_the_calls_stream_lets_it_finish(serve: Serve) -> None:
    """GOAWAY naming the call's stream: it completes there; the next call opens a new
    connection."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        request = await peer.request()
        if peer.index == 0:
            peer.send(f.goaway(request.stream_id, f.ErrorCode.NO_ERROR))
        peer.send(peer.reply(request.stream_id, request.message))
        await peer.linger()

    server, channel = await serve(script)
    assert await _call(channel, b"finish") == b"finish"
    assert await _call(channel, b"next") == b"next"
    assert [len(p.requests) for p in server.peers] == [1, 1]


async def test_a_server_ping_is_acknowledged_with_its_payload(serve: Serve) -> None:
    """PING from the server: PING with ACK and the same 8 bytes comes back."""
    acks: list[bytes] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send(f.frame(f.PING, 0, 0, b"pi\x00g\xffong"))
        ack = await peer.frame_matching(lambda fr: fr.kind == f.PING)
        acks.append(ack.payload if ack.flags & f.ACK else b"no ACK flag")
        request = await peer.request()
        peer.send(peer.reply(request.stream_id, request.message))
        await peer.linger()

    _, channel = await serve(script)
    assert await _call(channel) == b"ping"
    assert acks == [b"pi\x00g\xffong"]


async def test_every_server_settings_frame_is_acknowledged(serve: Serve) -> None:
    """The first SETTINGS and one sent mid-connection each get a SETTINGS ACK."""

    def is_ack(frame: Frame) -> bool:
        return frame.kind == f.SETTINGS and bool(frame.flags & f.ACK)

    async def script(peer: Peer) -> None:
        await peer.handshake({f.Setting.MAX_CONCURRENT_STREAMS: 100})
        first = await peer.frame_matching(is_ack)
        assert first.payload == b""
        request = await peer.request()
        peer.send(f.settings({f.Setting.MAX_FRAME_SIZE: 32_768}))
        while len([fr for fr in peer.frames if is_ack(fr)]) < 2:
            await peer.read_frame()
        peer.send(peer.reply(request.stream_id, request.message))
        await peer.linger()

    server, channel = await serve(script)
    assert await _call(channel) == b"ping"
    await asyncio.wait_for(channel.close(), _WAIT_S)
    await server.stop()
    assert len([fr for fr in server.peers[0].frames if is_ack(fr)]) == 2


async def test_a_push_promise_fails_the_connection(serve: Serve) -> None:
    """Push was disabled: PUSH_PROMISE is a connection error (GOAWAY PROTOCOL_ERROR) and the
    call fails with UNAVAILABLE instead of hanging."""
    goaway_codes: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        if peer.index:  # the client reconnecting: not part of this case
            await peer.linger()
            return
        request = await peer.request()
        push = struct.pack(">L", 2) + peer.block([(b":method", b"GET"), (b":path", b"/")])
        peer.send(
            peer.headers(request.stream_id, _OK_HEADERS),
            f.frame(f.PUSH_PROMISE, f.END_HEADERS, request.stream_id, push),
        )
        goaway = await peer.frame_matching(lambda fr: fr.kind == f.GOAWAY)
        goaway_codes.append(struct.unpack(">LL", goaway.payload[:8])[1])
        await peer.linger()

    server, channel = await serve(script)
    started = time.monotonic()
    assert (await _error(channel)).code() is grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 3
    await asyncio.wait_for(channel.close(), _WAIT_S)
    await server.stop()
    assert goaway_codes == [f.ErrorCode.PROTOCOL_ERROR]


async def test_a_frame_over_the_advertised_size_fails_the_connection(serve: Serve) -> None:
    """The client never raised SETTINGS_MAX_FRAME_SIZE: a 20000-byte frame is an error."""

    def answer(peer: Peer, request: Request) -> None:
        peer.send(
            peer.headers(request.stream_id, _OK_HEADERS),
            f.frame(f.DATA, 0, request.stream_id, _message(b"x" * 19_995)),
        )

    _, channel = await serve(lambda peer: _answer_each(peer, answer))
    assert (await _error(channel)).code() is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n",
        f.frame(f.PING, 0, 0, b"12345678"),  # a frame, but not the SETTINGS preface
        b"",  # closed without a byte
    ],
)
async def test_a_server_that_does_not_speak_http2_is_unavailable(
    serve: Serve, garbage: bytes
) -> None:
    """No SETTINGS first: the connection fails and the call is UNAVAILABLE, no hang."""

    async def script(peer: Peer) -> None:
        await peer.read_preface()
        peer.send(garbage)
        if garbage:
            await peer.linger()

    server, channel = await serve(script)
    started = time.monotonic()
    assert (await _error(channel)).code() is grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 3
    assert server.requests == []


async def test_a_server_that_never_sends_settings_leaves_the_deadline_in_charge(
    serve: Serve,
) -> None:
    """A connection that never becomes HTTP/2 ends the call at its deadline."""

    async def script(peer: Peer) -> None:
        await peer.read_preface()
        await peer.linger()

    _, channel = await serve(script)
    started = time.monotonic()
    assert (await _error(channel, timeout=0.5)).code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3


async def test_a_connection_lost_after_the_request_is_unavailable_not_retried(
    serve: Serve,
) -> None:
    """The request may have been handled: a dropped connection fails it, once."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        if peer.index:  # the client reconnecting: not part of this case
            await peer.linger()
            return
        request = await peer.request()
        peer.send(peer.headers(request.stream_id, _OK_HEADERS))
        await peer.writer.drain()
        # Returning closes the connection mid-response.

    server, channel = await serve(script)
    assert (await _error(channel)).code() is grpc.StatusCode.UNAVAILABLE
    assert len(server.requests) == 1


def _literal_indexed(name: bytes, value: bytes) -> bytes:
    """HPACK "literal with incremental indexing, new name" (adds the field to the table)."""
    return b"\x40" + bytes((len(name),)) + name + bytes((len(value),)) + value


async def test_a_remembered_indexed_block_is_forgotten_when_the_table_changes(
    serve: Serve,
) -> None:
    """The same one-byte indexed trailers mean a different field once a literal has shifted
    the server's table: 0xbe is grpc-status 0 on the second call, grpc-status 5 on the
    fourth. A client that kept the second call's decoding would answer OK."""
    headers = b"\x88" + b"\x0f\x10\x10application/grpc"  # :status 200; content-type literal
    trailers = [
        _literal_indexed(b"grpc-status", b"0"),  # table: [grpc-status: 0]
        b"\xbe",  # entry 62: grpc-status 0
        _literal_indexed(b"grpc-status", b"5"),  # table: [grpc-status: 5, grpc-status: 0]
        b"\xbe",  # entry 62 again, now grpc-status 5
    ]

    async def script(peer: Peer) -> None:
        await peer.handshake()
        for block in trailers:
            request = await peer.request()
            sid = request.stream_id
            peer.send(
                f.frame(f.HEADERS, f.END_HEADERS, sid, headers),
                f.frame(f.DATA, 0, sid, _message(b"pong")),
                f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, block),
            )
        await peer.linger()

    _, channel = await serve(script)
    assert await _call(channel) == b"pong"
    assert await _call(channel) == b"pong"
    assert (await _error(channel)).code() == grpc.StatusCode.NOT_FOUND
    assert (await _error(channel)).code() == grpc.StatusCode.NOT_FOUND


async def test_a_server_gone_silent_is_pinged_and_dropped_after_a_deadline(serve: Serve) -> None:
    """A call on a connection whose server stopped answering (no FIN: a crashed host) runs out
    of time; the client PINGs, gets nothing, drops the connection, and later calls go to a
    new one instead of waiting out their deadlines on the dead one."""

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake()
            await peer.request()  # never answered
            await peer.frame_matching(lambda frame: frame.kind == f.PING)  # nor acknowledged
            await peer.linger()
        else:
            await _answer_each(peer, lambda p, r: p.send(p.reply(r.stream_id, b"pong")))

    server, channel = await serve(script, settings=ConnectionSettings(ping_timeout_s=0.2))
    assert (await _error(channel, timeout=0.3)).code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(50):  # bounded: the reconnect takes a moment after the PING goes unanswered
        if len(server.peers) > 1:
            break
        await asyncio.sleep(0.05)
    assert await _call(channel) == b"pong"
    assert len(server.peers) == 2
    assert any(frame.kind == f.PING for frame in server.peers[0].frames)


async def test_a_slow_server_that_answers_the_ping_keeps_its_connection(serve: Serve) -> None:
    """A deadline passed because the handler was slow, not because the server is gone: the
    PING is answered and the connection stays in use."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        await peer.request()  # too slow for this one
        ping = await peer.frame_matching(lambda frame: frame.kind == f.PING)
        peer.send(f.frame(f.PING, f.ACK, 0, ping.payload))
        _echo(peer, await peer.request())
        await peer.linger()

    server, channel = await serve(script, settings=ConnectionSettings(ping_timeout_s=0.2))
    assert (await _error(channel, timeout=0.3)).code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.4)  # past the PING timeout: a dropped connection would show now
    assert await _call(channel, b"again") == b"again"
    assert len(server.peers) == 1

"""Whatever bytes a server sends, the edge's gRPC client ends the call: a reply or an
AioRpcError, within the deadline, with no exception escaping into the event loop."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import grpc
import hpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.edge.grpc_client import Channel
from services.edge.grpc_client import frames as f

_STREAM_IDS = st.sampled_from([0, 1, 3, 2**31 - 1])
_FRAME = st.tuples(
    st.integers(0, 10), st.integers(0, 255), _STREAM_IDS, st.binary(max_size=40)
).map(lambda t: f.frame(*t))


def _response_frames(status: bytes, message: bytes, grpc_status: bytes) -> list[bytes]:
    """A well-formed answer on stream 1, to be cut, reordered or mixed with noise."""
    encoder = hpack.Encoder()
    headers = encoder.encode([(b":status", status), (b"content-type", b"application/grpc")])
    trailers = encoder.encode([(b"grpc-status", grpc_status), (b"grpc-message", b"m%20x")])
    body = b"\x00" + struct.pack(">L", len(message)) + message
    return [
        f.frame(f.HEADERS, f.END_HEADERS, 1, headers),
        f.frame(f.DATA, 0, 1, body),
        f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, trailers),
    ]


_ANSWER = st.builds(
    _response_frames,
    st.sampled_from([b"200", b"503", b"x"]),
    st.binary(max_size=20),
    st.sampled_from([b"0", b"5", b"99", b""]),
)


@st.composite
def _server_bytes(draw: Any) -> bytes:
    answer = draw(_ANSWER)
    noise = draw(st.lists(_FRAME, max_size=4))
    parts = draw(st.permutations(answer + noise))
    data = b"".join(parts)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


async def _until_request_headers(reader: asyncio.StreamReader) -> None:
    """Read the client's frames up to its first HEADERS (the call's stream is then open)."""
    while True:
        head = await reader.readexactly(9)
        await reader.readexactly(int.from_bytes(head[:3], "big"))
        if head[3] == f.HEADERS:
            return


async def _call_against(server_bytes: bytes) -> tuple[str, list[dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))

    handlers: list[asyncio.Future[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = loop.create_future()
        handlers.append(done)
        try:
            await reader.readexactly(len(f.PREFACE))
            writer.write(f.settings({}))
            await _until_request_headers(reader)
            writer.write(server_bytes)
            await writer.drain()
            # Stay open: the client must end the call by itself (its deadline at worst).
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            done.set_result(None)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = Channel(f"127.0.0.1:{port}")
    call = channel.unary_unary("/p.S/M")
    try:
        outcome = repr(await asyncio.wait_for(call(b"ping", timeout=0.3), 5))
    except grpc.aio.AioRpcError as error:
        outcome = error.code().name
    finally:
        await channel.close()
        server.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
    return outcome, escaped


def _run(coroutine: Any) -> Any:
    """Run on a loop of its own: asyncio.run() would leave the main thread with no current
    loop, which later tests' synchronous fixtures that build grpc.aio channels rely on."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_server_bytes())
def test_any_server_bytes_end_the_call_cleanly(server_bytes: bytes) -> None:
    """A reply or a gRPC status, before the deadline runs far over; nothing left raising."""
    outcome, escaped = _run(_call_against(server_bytes))
    assert outcome, outcome
    assert not escaped, escaped


def test_a_well_formed_answer_is_the_reply() -> None:
    """The same harness with an intact answer yields the message (the property has teeth)."""
    outcome, escaped = _run(_call_against(b"".join(_response_frames(b"200", b"hi", b"0"))))
    assert outcome == repr(b"hi")
    assert not escaped

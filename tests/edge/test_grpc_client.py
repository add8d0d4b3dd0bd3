"""The edge's own gRPC client against real grpc.aio servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, wrappers_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.edge.grpc_client import Channel, ConnectionSettings
from services.edge.grpc_client.balancer import parse_target
from services.edge.grpc_client.headers import (
    _metadata_field,
    grpc_timeout,
    metadata_block,
    status_from,
)

# Every wait is bounded: a client that hangs fails the test instead of hanging the suite.
_WAIT_S = 10.0
_SERVICE = "test.Echo"

Methods = dict[str, grpc.RpcMethodHandler]
Start = Callable[..., Awaitable[tuple[grpc.aio.Server, int]]]
MakeChannel = Callable[..., Channel]


def _path(name: str) -> str:
    return f"/{_SERVICE}/{name}"


def _free_port() -> int:
    """A port nobody listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unary(handler: Callable[..., Any]) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(handler)


def _stream(handler: Callable[..., Any]) -> grpc.RpcMethodHandler:
    return grpc.unary_stream_rpc_method_handler(handler)


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Starts a grpc.aio server with the given methods of test.Echo; returns it and its port."""
    servers: list[grpc.aio.Server] = []

    async def _start(
        methods: Methods, *, port: int = 0, options: Sequence[tuple[str, Any]] = ()
    ) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=list(options))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, methods),))
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        servers.append(server)
        return server, bound

    yield _start
    for server in servers:
        await server.stop(None)


@pytest.fixture
async def channel() -> AsyncIterator[MakeChannel]:
    """Makes Channels that are closed after the test."""
    made: list[Channel] = []

    def _make(target: str, **kwargs: Any) -> Channel:
        made.append(Channel(target, **kwargs))
        return made[-1]

    yield _make
    for each in made:
        await each.close()


async def _collect(call: AsyncIterable[Any], into: list[Any]) -> None:
    async for message in call:
        into.append(message)


async def _code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call, _WAIT_S)
    return raised.value.code()


# ---- unary calls -------------------------------------------------------------------------


async def test_a_unary_call_carries_bodies_and_metadata_both_ways(
    start: Start, channel: MakeChannel
) -> None:
    """Request metadata reaches the handler; its initial and trailing metadata come back."""
    seen: dict[str, Any] = {}

    async def handler(
        request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext
    ) -> wrappers_pb2.StringValue:
        seen.update(context.invocation_metadata())
        await context.send_initial_metadata((("x-initial", "hello"),))
        context.set_trailing_metadata((("x-trailing", "bye"), ("x-trailing-bin", b"\x00\xff\x01")))
        return wrappers_pb2.StringValue(value=request.value.upper())

    methods = {
        "Unary": grpc.unary_unary_rpc_method_handler(
            handler,
            request_deserializer=wrappers_pb2.StringValue.FromString,
            response_serializer=wrappers_pb2.StringValue.SerializeToString,
        )
    }
    _, port = await start(methods)
    method = channel(f"127.0.0.1:{port}").unary_unary(
        _path("Unary"),
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    call = method(
        wrappers_pb2.StringValue(value="ping"),
        timeout=_WAIT_S,
        metadata=[("x-text", "value 1"), ("x-blob-bin", b"\x00\x01\xfe\xff\x80")],
    )
    reply = await asyncio.wait_for(call, _WAIT_S)

    assert reply.value == "PING"
    assert seen["x-text"] == "value 1"
    assert seen["x-blob-bin"] == b"\x00\x01\xfe\xff\x80"
    assert dict(await call.initial_metadata()) == {"x-initial": "hello"}
    assert dict(await call.trailing_metadata()) == {
        "x-trailing": "bye",
        "x-trailing-bin": b"\x00\xff\x01",
    }


async def test_a_server_error_raises_its_code_and_decoded_message(
    start: Start, channel: MakeChannel
) -> None:
    """abort(NOT_FOUND, non-ASCII text) is an AioRpcError with that code and that text."""

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing ✓ 100%")

    _, port = await start({"Unary": _unary(handler)})
    call = channel(f"127.0.0.1:{port}").unary_unary(_path("Unary"))(b"x", timeout=_WAIT_S)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call, _WAIT_S)
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no such thing ✓ 100%"


async def test_rich_error_details_arrive_as_grpc_status_details_bin(
    start: Start, channel: MakeChannel
) -> None:
    """A google.rpc.Status sent by the server parses back from the trailing metadata."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="ACCOUNT_GONE", domain="paynow.test"))
    status = status_pb2.Status(code=code_pb2.NOT_FOUND, message="gone", details=[detail])

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        rich = rpc_status.to_status(status)
        await context.abort(rich.code, rich.details, rich.trailing_metadata)

    _, port = await start({"Unary": _unary(handler)})
    call = channel(f"127.0.0.1:{port}").unary_unary(_path("Unary"))(b"x", timeout=_WAIT_S)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call, _WAIT_S)

    assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.NOT_FOUND, "gone")
    from_error = dict(raised.value.trailing_metadata())["grpc-status-details-bin"]
    from_call = dict(await call.trailing_metadata())["grpc-status-details-bin"]
    assert isinstance(from_error, bytes)
    assert from_error == from_call
    assert status_pb2.Status.FromString(from_error) == status


async def test_an_unknown_method_is_unimplemented(start: Start, channel: MakeChannel) -> None:
    """A path the server does not serve ends with UNIMPLEMENTED."""
    _, port = await start({"Unary": _unary(_echo)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Nope"))
    assert await _code_of(method(b"x", timeout=_WAIT_S)) is grpc.StatusCode.UNIMPLEMENTED


async def test_a_call_past_its_deadline_is_deadline_exceeded_on_both_sides(
    start: Start, channel: MakeChannel
) -> None:
    """The timeout reaches the server as grpc-timeout and ends the call on both sides."""
    remaining: list[float] = []
    cancelled = asyncio.Event()

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        remaining.append(context.time_remaining())
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return request

    _, port = await start({"Slow": _unary(handler)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Slow"))
    started = time.monotonic()
    assert await _code_of(method(b"x", timeout=0.5)) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    assert remaining
    assert 0 < remaining[0] <= 0.5
    await asyncio.wait_for(cancelled.wait(), _WAIT_S)


async def test_cancelling_a_call_cancels_the_handler_and_keeps_the_channel(
    start: Start, channel: MakeChannel
) -> None:
    """A cancelled caller resets the stream: the handler is cancelled, the next call works."""
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return request

    _, port = await start({"Slow": _unary(slow), "Echo": _unary(_echo)})
    client = channel(f"127.0.0.1:{port}")
    # No timeout: only the cancellation can end this call.
    task = asyncio.ensure_future(client.unary_unary(_path("Slow"))(b"x"))
    await asyncio.wait_for(entered.wait(), _WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, _WAIT_S)
    await asyncio.wait_for(cancelled.wait(), _WAIT_S)
    assert await client.unary_unary(_path("Echo"))(b"next", timeout=_WAIT_S) == b"next"


# ---- sizes and concurrency ---------------------------------------------------------------


async def test_a_large_request_and_a_large_response_round_trip_intact(
    start: Start, channel: MakeChannel
) -> None:
    """3 MiB each way, far past the 64 KiB initial windows and 16 KiB frames."""
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB, every byte value at every offset mod 256

    async def reverse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request[::-1]

    async def produce(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return big

    _, port = await start({"Reverse": _unary(reverse), "Produce": _unary(produce)})
    client = channel(f"127.0.0.1:{port}")
    reply = await client.unary_unary(_path("Reverse"))(big, timeout=_WAIT_S)
    assert reply == big[::-1]
    assert await client.unary_unary(_path("Produce"))(b"", timeout=_WAIT_S) == big


async def test_a_response_over_the_client_limit_is_resource_exhausted(
    start: Start, channel: MakeChannel
) -> None:
    """A reply beyond max_message_bytes fails that call only: the channel keeps working."""

    async def produce(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"z" * int(request)

    _, port = await start({"Produce": _unary(produce)})
    client = channel(f"127.0.0.1:{port}", settings=ConnectionSettings(max_message_bytes=1 << 20))
    method = client.unary_unary(_path("Produce"))
    too_big = method(b"%d" % (2 << 20), timeout=_WAIT_S)
    assert await _code_of(too_big) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await method(b"%d" % (1 << 20), timeout=_WAIT_S) == b"z" * (1 << 20)
    assert await method(b"3", timeout=_WAIT_S) == b"zzz"


async def test_two_hundred_concurrent_calls_all_succeed(start: Start, channel: MakeChannel) -> None:
    """Concurrent calls share the connection and each gets its own reply."""
    _, port = await start({"Echo": _unary(_echo)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Echo"))
    requests = [b"call %d" % i * (i % 7 + 1) for i in range(200)]
    replies = await asyncio.wait_for(
        asyncio.gather(*(method(r, timeout=_WAIT_S) for r in requests)), _WAIT_S
    )
    assert replies == requests


async def test_calls_beyond_the_servers_stream_limit_wait_for_a_slot(
    start: Start, channel: MakeChannel
) -> None:
    """With max_concurrent_streams 2, 20 concurrent calls all succeed, two at a time."""
    active = 0
    most = 0

    async def slowish(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal active, most
        active += 1
        most = max(most, active)
        try:
            await asyncio.sleep(0.05)
        finally:
            active -= 1
        return request

    _, port = await start(
        {"Slowish": _unary(slowish)}, options=[("grpc.max_concurrent_streams", 2)]
    )
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Slowish"))
    requests = [b"%d" % i for i in range(20)]
    replies = await asyncio.wait_for(
        asyncio.gather(*(method(r, timeout=_WAIT_S) for r in requests)), _WAIT_S
    )
    assert replies == requests
    assert most <= 2


# ---- server streaming --------------------------------------------------------------------


async def test_a_server_stream_yields_its_messages_in_order(
    start: Start, channel: MakeChannel
) -> None:
    """Every message arrives, in the order sent, then the call ends OK with its metadata."""

    async def count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        await context.send_initial_metadata((("x-count", request.decode()),))
        for i in range(int(request)):
            yield b"message %d" % i
        context.set_trailing_metadata((("x-done", "yes"),))

    _, port = await start({"Count": _stream(count)})
    call = channel(f"127.0.0.1:{port}").unary_stream(_path("Count"))(b"50", timeout=_WAIT_S)
    received = [m async for m in call]
    assert received == [b"message %d" % i for i in range(50)]
    assert dict(await call.initial_metadata()) == {"x-count": "50"}
    assert dict(await call.trailing_metadata()) == {"x-done": "yes"}


async def test_a_stream_error_after_messages_raises_after_yielding_them(
    start: Start, channel: MakeChannel
) -> None:
    """Messages sent before the server's error are yielded; then AioRpcError is raised."""

    async def fail_late(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"%d" % i
        await context.abort(grpc.StatusCode.ABORTED, "stopped after three")

    _, port = await start({"FailLate": _stream(fail_late)})
    call = channel(f"127.0.0.1:{port}").unary_stream(_path("FailLate"))(b"", timeout=_WAIT_S)
    received: list[bytes] = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(_collect(call, received), _WAIT_S)
    assert received == [b"0", b"1", b"2"]
    assert raised.value.code() is grpc.StatusCode.ABORTED
    assert raised.value.details() == "stopped after three"


async def test_a_slow_reader_of_a_long_stream_gets_every_message(
    start: Start, channel: MakeChannel
) -> None:
    """300 messages of 64 KiB: the server waits for credit while the reader pauses, and the
    credit comes back as the reader takes messages."""
    produced = 0

    async def flood(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        nonlocal produced
        for i in range(300):
            produced += 1
            yield i.to_bytes(4, "big") * (16 * 1024)

    _, port = await start({"Flood": _stream(flood)})
    call = channel(f"127.0.0.1:{port}").unary_stream(_path("Flood"))(b"", timeout=_WAIT_S)
    received = 0
    async with asyncio.timeout(_WAIT_S):
        async for message in call:
            assert message == received.to_bytes(4, "big") * (16 * 1024)
            received += 1
            if received == 1:
                await asyncio.sleep(0.3)  # the slow reader: the server runs out of window
                produced_while_paused = produced
    assert received == 300
    # 1 MiB of stream window is 16 messages; the server's own buffers hold some more.
    assert produced_while_paused < 100


async def test_leaving_a_stream_early_cancels_it_on_the_server(
    start: Start, channel: MakeChannel
) -> None:
    """Breaking out of `async for` resets the stream; the server's generator is cancelled."""
    cancelled = asyncio.Event()

    async def endless(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        try:
            i = 0
            while True:
                yield b"%d" % i
                i += 1
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    _, port = await start({"Endless": _stream(endless), "Echo": _unary(_echo)})
    client = channel(f"127.0.0.1:{port}")
    received = []
    async with asyncio.timeout(_WAIT_S):
        async for message in client.unary_stream(_path("Endless"))(b""):
            received.append(message)
            if len(received) == 3:
                break
    assert received == [b"0", b"1", b"2"]
    await asyncio.wait_for(cancelled.wait(), _WAIT_S)
    assert await client.unary_unary(_path("Echo"))(b"after", timeout=_WAIT_S) == b"after"


# ---- connections -------------------------------------------------------------------------


async def test_an_unreachable_target_fails_fast_with_unavailable(channel: MakeChannel) -> None:
    """Nobody listening: UNAVAILABLE at once, long before the 10 s timeout."""
    method = channel(f"127.0.0.1:{_free_port()}").unary_unary(_path("Echo"))
    started = time.monotonic()
    assert await _code_of(method(b"x", timeout=10)) is grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 3


async def test_wait_for_ready_waits_for_the_server_to_start(
    start: Start, channel: MakeChannel
) -> None:
    """With wait_for_ready the call outlives connection failures and succeeds once a server
    listens, within its deadline."""
    port = _free_port()
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Echo"))
    call = asyncio.ensure_future(method(b"patient", timeout=_WAIT_S, wait_for_ready=True))
    await asyncio.sleep(0.5)  # several refused connection attempts
    assert not call.done()
    await start({"Echo": _unary(_echo)}, port=port)
    assert await asyncio.wait_for(call, _WAIT_S) == b"patient"


async def _call_until_ok(method: Any, request: bytes, within_s: float = 5.0) -> float:
    """Call until a reply comes, UNAVAILABLE meanwhile; the seconds it took. Bounded."""
    started = time.monotonic()
    failures: list[grpc.StatusCode] = []
    while time.monotonic() - started < within_s:
        try:
            reply = await method(request, timeout=1.0)
        except grpc.aio.AioRpcError as error:
            failures.append(error.code())
            await asyncio.sleep(0.05)
            continue
        assert reply == request
        assert set(failures) <= {grpc.StatusCode.UNAVAILABLE}, failures
        return time.monotonic() - started
    raise AssertionError(f"no reply within {within_s} s: {failures}")


async def test_calls_succeed_again_after_the_server_restarts(
    start: Start, channel: MakeChannel
) -> None:
    """Stopped: calls fail with UNAVAILABLE; started again on that port: calls succeed."""
    server, port = await start({"Echo": _unary(_echo)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Echo"))
    assert await method(b"before", timeout=_WAIT_S) == b"before"
    await server.stop(None)
    assert await _code_of(method(b"down", timeout=_WAIT_S)) is grpc.StatusCode.UNAVAILABLE
    await start({"Echo": _unary(_echo)}, port=port)
    assert await _call_until_ok(method, b"after") < 5


async def test_a_call_in_flight_completes_through_a_graceful_shutdown(
    start: Start, channel: MakeChannel
) -> None:
    """server.stop(grace) lets the running call finish; a new server then takes calls."""
    entered = asyncio.Event()

    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        entered.set()
        await asyncio.sleep(0.5)
        return request

    server, port = await start({"Slow": _unary(slow), "Echo": _unary(_echo)})
    client = channel(f"127.0.0.1:{port}")
    call = asyncio.ensure_future(client.unary_unary(_path("Slow"))(b"inflight", timeout=_WAIT_S))
    await asyncio.wait_for(entered.wait(), _WAIT_S)
    stopping = asyncio.ensure_future(server.stop(grace=2))
    assert await asyncio.wait_for(call, _WAIT_S) == b"inflight"
    await asyncio.wait_for(stopping, _WAIT_S)
    await start({"Echo": _unary(_echo)}, port=port)
    assert await _call_until_ok(client.unary_unary(_path("Echo")), b"next") < 5


async def test_connections_the_server_ages_out_are_replaced_without_failing_calls(
    start: Start, channel: MakeChannel
) -> None:
    """PayNow's servers close each connection after a while (grpc.max_connection_age_ms, so
    clients re-resolve): GOAWAY, then a new connection. Calls made all through it, several
    at a time, all succeed."""
    peers: set[str] = set()

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        peers.add(context.peer())
        await asyncio.sleep(0.01)
        return request

    options = [("grpc.max_connection_age_ms", 300), ("grpc.max_connection_age_grace_ms", 2000)]
    _, port = await start({"Echo": _unary(echo)}, options=options)
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Echo"))

    async def caller(index: int) -> None:
        for n in range(60):
            body = b"%d-%d" % (index, n)
            assert await asyncio.wait_for(method(body, timeout=_WAIT_S), _WAIT_S) == body

    await asyncio.gather(*(caller(i) for i in range(4)))
    assert len(peers) >= 2  # the connection really was replaced along the way


async def test_calls_take_the_addresses_of_an_ipv4_target_in_turn(
    start: Start, channel: MakeChannel
) -> None:
    """Round robin: once both connections are up, calls alternate between the servers."""
    counts: Counter[str] = Counter()

    def named(name: str) -> grpc.RpcMethodHandler:
        async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            counts[name] += 1
            return name.encode()

        return _unary(handler)

    _, a = await start({"Who": named("a")})
    _, b = await start({"Who": named("b")})
    method = channel(f"ipv4:127.0.0.1:{a},127.0.0.1:{b}").unary_unary(_path("Who"))
    async with asyncio.timeout(_WAIT_S):
        while len(counts) < 2:  # until the second connection is ready too
            await method(b"", timeout=_WAIT_S)
    counts.clear()
    for _ in range(20):
        await method(b"", timeout=_WAIT_S)
    assert counts == {"a": 10, "b": 10}


async def test_an_address_that_is_down_is_skipped(start: Start, channel: MakeChannel) -> None:
    """Round robin over a live and a dead address: every call goes to the live one."""
    _, live = await start({"Echo": _unary(_echo)})
    method = channel(f"ipv4:127.0.0.1:{_free_port()},127.0.0.1:{live}").unary_unary(_path("Echo"))
    for i in range(10):
        assert await method(b"%d" % i, timeout=_WAIT_S) == b"%d" % i


async def test_a_dns_name_reaches_the_server(start: Start, channel: MakeChannel) -> None:
    """dns:///localhost:port resolves and connects (an unreachable ::1 does not matter)."""
    _, port = await start({"Echo": _unary(_echo)})
    method = channel(f"dns:///localhost:{port}").unary_unary(_path("Echo"))
    for i in range(4):
        assert await method(b"%d" % i, timeout=_WAIT_S, wait_for_ready=True) == b"%d" % i


async def test_closing_the_channel_ends_a_call_waiting_for_a_connection(
    channel: MakeChannel,
) -> None:
    """A call still waiting for its first connection ends when its channel is closed."""
    client = channel(f"127.0.0.1:{_free_port()}")
    call = asyncio.ensure_future(client.unary_unary(_path("Echo"))(b"x", wait_for_ready=True))
    await asyncio.sleep(0.3)  # refused a few times; waiting for ready
    assert not call.done()
    await client.close()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call, 2)
    assert raised.value.code() == grpc.StatusCode.CANCELLED  # as grpc.aio's close()


async def test_awaiting_a_unary_call_twice_sends_it_once(
    start: Start, channel: MakeChannel
) -> None:
    """A call is one RPC however often it is awaited, as with grpc.aio."""
    invocations = 0

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal invocations
        invocations += 1
        return request

    _, port = await start({"Echo": _unary(handler)})
    call = channel(f"127.0.0.1:{port}").unary_unary(_path("Echo"))(b"x", timeout=_WAIT_S)
    assert await call == b"x"
    assert await call == b"x"
    assert invocations == 1


# ---- retries -----------------------------------------------------------------------------


async def test_unavailable_before_any_response_header_is_retried(
    start: Start, channel: MakeChannel
) -> None:
    """A handler turning the first two attempts away with UNAVAILABLE: the third succeeds."""
    invocations = 0

    async def flaky(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal invocations
        invocations += 1
        if invocations <= 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return request

    _, port = await start({"Flaky": _unary(flaky)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Flaky"))
    assert await asyncio.wait_for(method(b"x", timeout=_WAIT_S), _WAIT_S) == b"x"
    assert invocations == 3


async def test_retries_stop_after_four_attempts(start: Start, channel: MakeChannel) -> None:
    """A server that always answers UNAVAILABLE sees the call four times, then it fails."""
    invocations = 0

    async def down(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal invocations
        invocations += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")

    _, port = await start({"Down": _unary(down)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Down"))
    assert await _code_of(method(b"x", timeout=_WAIT_S)) is grpc.StatusCode.UNAVAILABLE
    assert invocations == 4


async def test_unavailable_after_response_headers_is_not_retried(
    start: Start, channel: MakeChannel
) -> None:
    """Once the handler sent headers it may have acted: its UNAVAILABLE is final."""
    invocations = 0

    async def started_then_failed(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal invocations
        invocations += 1
        await context.send_initial_metadata((("x-started", "1"),))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "gave up midway")

    _, port = await start({"Midway": _unary(started_then_failed)})
    method = channel(f"127.0.0.1:{port}").unary_unary(_path("Midway"))
    call = method(b"x", timeout=_WAIT_S)
    assert await _code_of(call) is grpc.StatusCode.UNAVAILABLE
    assert invocations == 1
    assert dict(await call.initial_metadata()) == {"x-started": "1"}


# ---- metadata refused up front -----------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        [("X-Upper", "v")],
        [("x-newline", "a\nb")],
        [("x-accent", "café")],
        [("grpc-timeout", "1S")],
        [(":path", "/other")],
        [("", "v")],
        [("x-text", b"bytes for a text key")],
    ],
)
async def test_unsendable_metadata_is_internal_before_anything_is_sent(
    start: Start, channel: MakeChannel, metadata: list[tuple[str, Any]]
) -> None:
    """Invalid metadata raises INTERNAL when the call is made; the server sees nothing."""
    invocations = 0

    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal invocations
        invocations += 1
        return request

    _, port = await start({"Echo": _unary(handler)})
    client = channel(f"127.0.0.1:{port}")
    method = client.unary_unary(_path("Echo"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        method(b"x", timeout=_WAIT_S, metadata=metadata)
    assert raised.value.code() is grpc.StatusCode.INTERNAL
    assert await method(b"ok", timeout=_WAIT_S, metadata=[("x-fine", "v")]) == b"ok"
    assert invocations == 1


# ---- pure functions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:50051", (("localhost", 50051), None)),
        ("dns:///backend.svc:8080", (("backend.svc", 8080), None)),
        ("10.0.0.1:1", (("10.0.0.1", 1), None)),
        ("[::1]:443", (("::1", 443), None)),
        ("dns:///[::1]:443", (("::1", 443), None)),
        ("ipv4:127.0.0.1:1", (("127.0.0.1", 1), [("127.0.0.1", 1)])),
        (
            "ipv4:127.0.0.1:1,127.0.0.2:65535",
            (("127.0.0.1", 1), [("127.0.0.1", 1), ("127.0.0.2", 65535)]),
        ),
        ("ipv6:[::1]:80,[fe80::1]:81", (("::1", 80), [("::1", 80), ("fe80::1", 81)])),
    ],
)
def test_parse_target_accepts_grpc_names(target: str, expected: Any) -> None:
    """host:port, dns:///host:port and ipv4:/ipv6: lists parse to the name and addresses."""
    assert parse_target(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "",
        "localhost",
        "localhost:",
        ":50051",
        "localhost:0",
        "localhost:65536",
        "localhost:http",
        "localhost:-1",
        "dns:///localhost",
        "ipv4:",
        "ipv4:127.0.0.1",
        "ipv4:127.0.0.1:1,",
        "ipv6:[::1]",
        "[::1]",
        "unix:/tmp/socket",
    ],
)
def test_parse_target_refuses_malformed_targets(target: str) -> None:
    """A target without a usable host and port is refused with ValueError."""
    with pytest.raises(ValueError, match="gRPC target"):
        parse_target(target)


@pytest.mark.parametrize(
    "target",
    [
        "dns://8.8.8.8/backend:53",  # a DNS authority: host 'dns://8.8.8.8/backend'
        "http://backend:80",  # host 'http://backend'
        "back end:80",
        "ipv6:::1",  # host ':' port 1
        "ipv4:127.0.0.1:1,dns:///backend:2",  # host 'dns:///backend' in a fixed list
    ],
)
def test_parse_target_refuses_a_scheme_or_garbage_taken_for_a_host(target: str) -> None:
    """Text that is not a host name or address is refused, not resolved later."""
    with pytest.raises(ValueError, match="gRPC target"):
        parse_target(target)


def test_parse_target_does_not_take_dns_colon_for_part_of_the_host() -> None:
    """dns:localhost:50051 is gRPC's name localhost:50051, or at least refused."""
    try:
        parsed = parse_target("dns:localhost:50051")
    except ValueError:
        return
    assert parsed == (("localhost", 50051), None)


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.5, b"500m"),
        (1, b"1000m"),
        (0.0015, b"2m"),  # rounded up: never a shorter deadline than the caller's
        (0.0001, b"1m"),
        (0, b"1m"),
        (-3, b"1m"),
        (99_999.999, b"99999999m"),  # the most milliseconds that fit 8 digits
        (100_000, b"100000S"),
        (100_000.2, b"100001S"),
        (10**9, b"99999999S"),
    ],
)
def test_grpc_timeout_is_whole_units_rounded_up_in_eight_digits(
    seconds: float, header: bytes
) -> None:
    """grpc-timeout: milliseconds, or seconds once that needs more than 8 digits."""
    assert grpc_timeout(seconds) == header


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([(b"grpc-status", b"0")], (grpc.StatusCode.OK, "")),
        (
            [(b"grpc-status", b"5"), (b"grpc-message", b"no such thing %E2%9C%93")],
            (grpc.StatusCode.NOT_FOUND, "no such thing ✓"),
        ),
        ([(b"grpc-message", b"x"), (b"grpc-status", b"14")], (grpc.StatusCode.UNAVAILABLE, "x")),
        (
            [(b"grpc-status", b"3"), (b"grpc-message", b"a+b%25")],
            (grpc.StatusCode.INVALID_ARGUMENT, "a+b%"),
        ),
        (
            [(b"grpc-status", b"13"), (b"grpc-message", b"bad %FF")],
            (grpc.StatusCode.INTERNAL, "bad \ufffd"),
        ),
        ([(b"grpc-status", b"16")], (grpc.StatusCode.UNAUTHENTICATED, "")),
    ],
)
def test_status_from_reads_the_code_and_percent_decoded_message(
    fields: list[tuple[bytes, bytes]], expected: tuple[grpc.StatusCode, str]
) -> None:
    """grpc-status gives the code; grpc-message is percent-decoded UTF-8."""
    assert status_from(fields) == expected


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [(b"grpc-message", b"no status")],
        [(b"grpc-status", b"17")],
        [(b"grpc-status", b"-1")],
        [(b"grpc-status", b"x")],
        [(b"grpc-status", b"")],
    ],
)
def test_status_from_is_unknown_without_a_valid_code(fields: list[tuple[bytes, bytes]]) -> None:
    """A missing or unknown grpc-status is UNKNOWN."""
    assert status_from(fields)[0] is grpc.StatusCode.UNKNOWN


async def test_connections_bound_unacknowledged_data_in_the_kernel(
    start: Start, channel: MakeChannel
) -> None:
    """TCP_USER_TIMEOUT is set from the settings, so a peer that stops acknowledging (a
    crashed host) is dropped by the kernel within that time."""
    _, port = await start({"Echo": _unary(_echo)})
    client = channel(f"127.0.0.1:{port}", settings=ConnectionSettings(tcp_user_timeout_s=3))
    assert await client.unary_unary(_path("Echo"))(b"x", timeout=_WAIT_S) == b"x"
    (connection,) = client.balancer._ready
    sock = connection._transport.get_extra_info("socket")  # type: ignore[union-attr]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 3000


def test_the_cache_of_encoded_metadata_is_bounded() -> None:
    """Clients choose the names and values of Grpc-Metadata-* headers: however many distinct
    ones pass through, the cache of their encodings stays at its bound."""
    for i in range(2000):
        metadata_block([(f"x-k{i}", f"v{i}")])
    assert _metadata_field.cache_info().currsize <= 512

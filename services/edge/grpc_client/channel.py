"""Calls: grpc.aio's channel API, as far as the edge uses it, on this package's HTTP/2.

`Channel(target).unary_unary(path, serializer, deserializer)` returns a callable whose calls
are awaited for the reply and then give `initial_metadata()` and `trailing_metadata()`;
`unary_stream` calls are iterated with `async for`. Failures raise grpc.aio.AioRpcError, so
code written for grpc.aio handles them unchanged.

Deadlines: the call's timeout is sent as `grpc-timeout` and enforced here too (the stream is
reset when it passes). Retries follow PayNow's retry policy (CHANNEL_OPTIONS): UNAVAILABLE,
up to 4 attempts, back-off from 0.1 s doubling to 1 s, within the deadline, and only when
the attempt cannot have reached a handler: the connection refused or never carried it, or
the server answered UNAVAILABLE before any response header. A call whose connection dropped
after the request went out is not sent again (grpc's policy would: it cannot tell).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import grpc

from .balancer import Balancer
from .connection import Connection, ConnectionSettings
from .headers import (
    Metadata,
    MetadataError,
    grpc_timeout,
    literal,
    metadata_block,
    parse_metadata,
    request_prefix,
    status_from,
)
from .streams import CallFailed, Stream

__all__ = ["Channel", "UnaryStreamMethod", "UnaryUnaryMethod"]

_MAX_ATTEMPTS = 4
_INITIAL_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 1.0
_OK = grpc.StatusCode.OK
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

Serializer = Callable[[Any], bytes]
Deserializer = Callable[[bytes], Any]
MetadataPairs = Sequence[tuple[str, str | bytes]]
CallT = TypeVar("CallT")


class Channel:
    """A channel to `target` (`host:port` or `dns:///host:port`)."""

    def __init__(
        self,
        target: str,
        *,
        settings: ConnectionSettings | None = None,
        user_agent: str = "paynow-edge",
    ) -> None:
        self.balancer = Balancer(target, settings or ConnectionSettings())
        self.user_agent = user_agent

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer | None = None,
        response_deserializer: Deserializer | None = None,
        **_options: object,
    ) -> UnaryUnaryMethod:
        return UnaryUnaryMethod(self, method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer | None = None,
        response_deserializer: Deserializer | None = None,
        **_options: object,
    ) -> UnaryStreamMethod:
        return UnaryStreamMethod(self, method, request_serializer, response_deserializer)

    async def close(self, grace: float | None = None) -> None:
        await self.balancer.close(grace)


def _identity(value: Any) -> Any:
    return value


class _Method(Generic[CallT]):
    """A method of a channel: calling it starts a call of `_call_class`."""

    __slots__ = ("balancer", "deserialize", "path", "prefix", "serialize")
    _call_class: ClassVar[type[Any]]

    def __init__(
        self,
        channel: Channel,
        path: str,
        serialize: Serializer | None,
        deserialize: Deserializer | None,
    ) -> None:
        self.balancer = channel.balancer
        self.path = path
        self.serialize = serialize or _identity
        self.deserialize = deserialize or _identity
        self.prefix = request_prefix(path, channel.balancer.authority, channel.user_agent)

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: MetadataPairs | None = None,
        wait_for_ready: bool | None = None,
        **_options: object,
    ) -> CallT:
        call: CallT = self._call_class(self, request, timeout, metadata, bool(wait_for_ready))
        return call


def _rpc_error(
    code: grpc.StatusCode, details: str, initial: Metadata = (), trailing: Metadata = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(*initial), grpc.aio.Metadata(*trailing), details, None
    )


class _Call:
    """What unary and server-streaming calls share: encoding, attempts, the deadline."""

    __slots__ = (
        "_connection",
        "_deadline",
        "_initial",
        "_method",
        "_payload",
        "_stream",
        "_timer",
        "_trailing",
        "_wait_for_ready",
    )

    def __init__(
        self,
        method: _Method[Any],
        request: Any,
        timeout: float | None,
        metadata: MetadataPairs | None,
        wait_for_ready: bool,
    ) -> None:
        self._method = method
        loop = asyncio.get_running_loop()
        if timeout is not None and not math.isfinite(timeout):
            if math.isnan(timeout):
                raise _rpc_error(grpc.StatusCode.INTERNAL, "the call's timeout is NaN")
            timeout = None  # infinite: no deadline, as with no timeout
        self._deadline = None if timeout is None else loop.time() + timeout
        self._wait_for_ready = wait_for_ready
        try:
            block = metadata_block(metadata) if metadata else b""
        except MetadataError as error:
            raise _rpc_error(grpc.StatusCode.INTERNAL, str(error)) from None
        try:
            body = method.serialize(request)
        except Exception as error:
            raise _rpc_error(
                grpc.StatusCode.INTERNAL, f"the request did not serialize: {error}"
            ) from None
        self._payload = (block, b"\x00" + len(body).to_bytes(4, "big") + body)
        self._initial: Metadata = ()
        self._trailing: Metadata = ()
        self._stream: Stream | None = None
        self._connection: Connection | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def initial_metadata(self) -> Metadata:
        return self._initial

    async def trailing_metadata(self) -> Metadata:
        return self._trailing

    async def _start(self) -> Stream:
        """Open the call's stream, retrying as the module docstring says, and wait for its
        first header block (or its end)."""
        loop = asyncio.get_running_loop()
        attempt = 1
        while True:
            try:
                stream = await self._attempt(loop)
                while stream.headers is None and not stream.ended:
                    await stream.changed()
                if not self._retryable(stream) or not self._may_retry(loop, attempt):
                    return stream
            except CallFailed as failure:
                if not failure.unprocessed or not self._may_retry(loop, attempt):
                    raise self._error(failure.code, failure.details) from None
            self._stop_timer()
            backoff = min(_INITIAL_BACKOFF_S * 2 ** (attempt - 1), _MAX_BACKOFF_S)
            await asyncio.sleep(random.uniform(0, backoff))  # noqa: S311 - jitter
            attempt += 1

    async def _attempt(self, loop: asyncio.AbstractEventLoop) -> Stream:
        method = self._method
        deadline = self._deadline
        connection = await method.balancer.connection(deadline, self._wait_for_ready)
        if connection.full:
            await connection.wait_for_slot(deadline)
        block, payload = self._payload
        if deadline is not None:
            # Measured after any wait, so the server is told the time truly left.
            left = deadline - loop.time()
            if left <= 0:
                raise CallFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed")
            block = literal(b"grpc-timeout", grpc_timeout(left)) + block
        stream = connection.open_stream(method.prefix + block, payload)
        self._stream = stream
        self._connection = connection
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._expire)
        return stream

    def _retryable(self, stream: Stream) -> bool:
        failure = stream.failure
        if failure is not None:
            return failure.unprocessed
        # Trailers-only UNAVAILABLE: the server turned the call away before handling it.
        return stream.headers is None and status_from(stream.trailers or ())[0] is _UNAVAILABLE

    def _may_retry(self, loop: asyncio.AbstractEventLoop, attempt: int) -> bool:
        if attempt >= _MAX_ATTEMPTS:
            return False
        return self._deadline is None or loop.time() < self._deadline

    def _expire(self) -> None:
        stream, connection = self._stream, self._connection
        if stream is not None and connection is not None and not stream.ended:
            stream.fail(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed")
            connection.reset(stream)
            connection.probe()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _abandon(self) -> None:
        """The caller stopped waiting (cancelled, or left a stream early): reset the stream."""
        self._stop_timer()
        stream, connection = self._stream, self._connection
        if stream is not None and connection is not None and not stream.ended:
            stream.fail(grpc.StatusCode.CANCELLED, "the call was cancelled")
            connection.reset(stream)

    def _error(self, code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
        return _rpc_error(code, details, self._initial, self._trailing)

    def _finish(self, stream: Stream) -> None:
        """Raise the call's error unless it ended with OK; fills the metadata either way."""
        self._stop_timer()
        self._initial = parse_metadata(stream.headers or ())
        if stream.failure is not None:
            raise self._error(stream.failure.code, stream.failure.details)
        trailers = stream.trailers or ()
        self._trailing = parse_metadata(trailers)
        code, details = status_from(trailers)
        if code is not _OK:
            raise self._error(code, details)


class UnaryUnaryCall(_Call):
    """Await it for the reply. The call starts at the first await and runs once: later
    awaits, and `initial_metadata()`/`trailing_metadata()`, wait for that run's outcome."""

    __slots__ = ("_outcome",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # None: not started; a list of waiters while running; then (ok, reply or error).
        self._outcome: list[asyncio.Future[None]] | tuple[bool, Any] | None = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._once().__await__()

    async def initial_metadata(self) -> Metadata:
        await self._settled()
        return self._initial

    async def trailing_metadata(self) -> Metadata:
        await self._settled()
        return self._trailing

    async def _settled(self) -> None:
        with contextlib.suppress(Exception):
            await self

    async def _once(self) -> Any:
        outcome = self._outcome
        if outcome is None:
            self._outcome = []
            try:
                reply = await self._result()
            except BaseException as error:
                self._settle((False, error))
                raise
            self._settle((True, reply))
            return reply
        if isinstance(outcome, list):
            waiter = asyncio.get_running_loop().create_future()
            outcome.append(waiter)
            await waiter
            outcome = self._outcome
        assert isinstance(outcome, tuple)
        ok, value = outcome
        if ok:
            return value
        raise value

    def _settle(self, outcome: tuple[bool, Any]) -> None:
        waiters = self._outcome
        self._outcome = outcome
        for waiter in waiters if isinstance(waiters, list) else ():
            if not waiter.done():
                waiter.set_result(None)

    async def _result(self) -> Any:
        try:
            stream = await self._start()
            while not stream.ended:
                await stream.changed()
        except asyncio.CancelledError:
            self._abandon()
            raise
        self._finish(stream)
        if len(stream.messages) != 1:
            raise self._error(
                grpc.StatusCode.INTERNAL,
                f"a unary call got {len(stream.messages)} response messages",
            )
        try:
            return self._method.deserialize(stream.take())
        except Exception as error:
            raise self._error(
                grpc.StatusCode.INTERNAL, f"the response did not parse: {error}"
            ) from None


class UnaryStreamCall(_Call):
    """Iterate it with `async for` (once). The call starts at the first iteration or at
    `initial_metadata()`, whichever comes first."""

    __slots__ = ("_opening",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._opening: asyncio.Future[Stream] | None = None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def initial_metadata(self) -> Metadata:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._open()
        return self._initial

    async def _open(self) -> Stream:
        """The stream with its first header block in (or ended), opened once."""
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_future()
            try:
                stream = await self._start()
            except asyncio.CancelledError:
                self._opening.cancel()
                raise
            except BaseException as error:
                self._opening.set_exception(error)
                self._opening.exception()  # retrieved: whoever awaits next gets it raised
                raise
            self._initial = parse_metadata(stream.headers or ())
            self._opening.set_result(stream)
            return stream
        return await asyncio.shield(self._opening)

    async def _messages(self) -> AsyncIterator[Any]:
        stream: Stream | None = None
        try:
            stream = await self._open()
            connection = self._connection
            assert connection is not None
            while True:
                if stream.messages:
                    message = stream.take()
                    connection.credit(stream)
                    yield self._deserialize(message)
                elif stream.ended:
                    break
                else:
                    await stream.changed()
        except BaseException:
            # Cancelled, or the reader left the loop early (GeneratorExit).
            self._abandon()
            raise
        self._finish(stream)

    def _deserialize(self, message: bytes) -> Any:
        try:
            return self._method.deserialize(message)
        except Exception as error:
            self._abandon()
            raise self._error(
                grpc.StatusCode.INTERNAL, f"a response message did not parse: {error}"
            ) from None


class UnaryUnaryMethod(_Method[UnaryUnaryCall]):
    __slots__ = ()
    _call_class = UnaryUnaryCall


class UnaryStreamMethod(_Method[UnaryStreamCall]):
    __slots__ = ()
    _call_class = UnaryStreamCall

"""One target name, a connection per address it resolves to, taken in turn (round robin).

As PayNow's grpc.aio channels are configured (framework/_clients.py CHANNEL_OPTIONS): every
address the name resolves to gets a connection and calls take them in turn; a connection
that fails is retried with a back-off from 0.1 s growing to 2 s; the name is resolved again
when a connection fails (at most every 5 s) and every 30 s, so a Kubernetes headless Service
that gains or loses pods is followed. A call finding no connection ready waits while one is
being made, and fails at once with UNAVAILABLE once every address has failed (gRPC's
fail-fast), unless it asked to wait for ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import re
import socket

import grpc
import structlog

from .connection import Connection, ConnectionSettings
from .streams import CallFailed

__all__ = ["Balancer", "parse_target"]

_log = structlog.get_logger("edge")

_INITIAL_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 2.0
_BACKOFF_MULTIPLIER = 1.6
_JITTER = 0.2
_CONNECT_TIMEOUT_S = 20.0
_RESOLVE_EVERY_S = 30.0
_RESOLVE_AT_MOST_EVERY_S = 5.0


Address = tuple[str, int]

# A DNS name (labels of letters, digits, '-' and '_'), or an IPv4 address.
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?\Z")


def _host_port(address: str, target: str, kind: str = "name") -> Address:
    """(host, port) of `host:port` or `[v6]:port`; `kind` says what the host must be:
    a name or an address ("name"), an IPv4 ("ipv4") or an IPv6 address ("ipv6")."""
    bracketed = address.startswith("[")
    if bracketed:
        host, sep, port = address[1:].partition("]:")
    else:
        host, sep, port = address.rpartition(":")
    valid = bool(sep) and port.isdigit() and 0 < int(port) < 65536
    if valid and (bracketed or kind == "ipv6"):
        valid = bracketed and kind != "ipv4" and _is_ip(host, 6)
    elif valid:
        valid = _is_ip(host, 4) if kind == "ipv4" else bool(_HOST_NAME.match(host))
    if not valid:
        raise ValueError(
            f"gRPC target {target!r}: expected host:port, dns:///host:port, "
            "ipv4:a.b.c.d:port[,...] or ipv6:[addr]:port[,...]"
        )
    return host, int(port)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def parse_target(target: str) -> tuple[Address, list[Address] | None]:
    """The name to resolve, and the fixed addresses of an `ipv4:`/`ipv6:` target (None for
    a name: `host:port`, `dns:host:port` or `dns:///host:port`; a `dns://server/` of its
    own is not supported). Raises ValueError."""
    for scheme in ("ipv4", "ipv6"):
        if target.startswith(scheme + ":"):
            entries = target[len(scheme) + 1 :].split(",")
            fixed = [_host_port(entry, target, scheme) for entry in entries]
            return fixed[0], fixed
    name = target.removeprefix("dns:///") if target.startswith("dns:///") else target
    if name.startswith("dns:") and not name.startswith("dns://"):
        name = name.removeprefix("dns:")
    return _host_port(name, target), None


class _Subchannel:
    """Keeps one connection to one address open, reconnecting with back-off."""

    def __init__(self, balancer: Balancer, address: Address) -> None:
        self.address = address
        self.connection: Connection | None = None
        # True from a failure until the next success (gRPC's sticky TRANSIENT_FAILURE).
        self.failing = False
        self.last_error = ""
        self._balancer = balancer
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        self._task.cancel()
        if self.connection is not None:
            self.connection.close()

    async def _run(self) -> None:
        backoff = _INITIAL_BACKOFF_S
        while True:
            try:
                connection, closed = await self._connect()
            except (OSError, ConnectionError, TimeoutError) as error:
                self.failing = True
                host, port = self.address
                self.last_error = f"cannot connect to {host}:{port}: {error or type(error)}"
                self._balancer._changed(failed=True)
                delay = backoff * random.uniform(1 - _JITTER, 1 + _JITTER)  # noqa: S311
                backoff = min(backoff * _BACKOFF_MULTIPLIER, _MAX_BACKOFF_S)
                await asyncio.sleep(delay)
                continue
            backoff = _INITIAL_BACKOFF_S
            self.failing = False
            self.connection = connection
            self._balancer._changed()
            await closed
            self.connection = None
            self._balancer._changed(failed=True)

    async def _connect(self) -> tuple[Connection, asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def on_close(_: Connection) -> None:
            if not closed.done():
                closed.set_result(None)

        async with asyncio.timeout(_CONNECT_TIMEOUT_S):
            transport, connection = await loop.create_connection(
                lambda: Connection(self._balancer.settings, on_close),
                *self.address,
            )
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
                    millis = int(self._balancer.settings.tcp_user_timeout_s * 1000)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, millis)
            try:
                await connection.ready
            except BaseException:
                transport.abort()
                raise
        return connection, closed


class Balancer:
    """Connections to every address of `target`; see the module docstring."""

    def __init__(self, target: str, settings: ConnectionSettings) -> None:
        self.target = target
        (self.host, self.port), self._fixed = parse_target(target)
        # :authority, as grpc sends it: the name asked for, not the address connected to.
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = f"{host}:{self.port}"
        self.settings = settings
        self._subchannels: dict[Address, _Subchannel] = {}
        self._ready: list[Connection] = []
        self._next = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._resolver: asyncio.Task[None] | None = None
        self._resolve_now: asyncio.Event | None = None
        self._resolve_error = ""
        self._closed = False

    # ---- picking a connection ----------------------------------------------------------

    async def connection(self, deadline: float | None, wait_for_ready: bool) -> Connection:
        """A ready connection, the next in turn. Raises CallFailed: UNAVAILABLE (fail-fast,
        nothing sent) or DEADLINE_EXCEEDED."""
        ready = self._ready
        while ready:
            self._next += 1
            connection = ready[self._next % len(ready)]
            if connection.usable:
                return connection
            ready.remove(connection)
        return await self._wait_for_connection(deadline, wait_for_ready)

    async def _wait_for_connection(
        self, deadline: float | None, wait_for_ready: bool
    ) -> Connection:
        loop = asyncio.get_running_loop()
        if self._resolver is None and not self._closed:
            self._resolve_now = asyncio.Event()
            self._resolver = loop.create_task(self._resolve_forever())
        while not self._ready:
            if self._closed:
                # As grpc.aio: calls on (or waiting in) a closed channel are cancelled.
                raise CallFailed(grpc.StatusCode.CANCELLED, "the channel was closed")
            if not wait_for_ready and self._all_failing():
                raise CallFailed(grpc.StatusCode.UNAVAILABLE, self._failure(), unprocessed=True)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timeout = None if deadline is None else deadline - loop.time()
            if timeout is not None and timeout <= 0:
                raise CallFailed(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no connection to {self.target} before the deadline: {self._failure()}",
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await waiter
        return await self.connection(deadline, wait_for_ready)

    def _all_failing(self) -> bool:
        if self._resolve_error and not self._subchannels:
            return True
        return bool(self._subchannels) and all(s.failing for s in self._subchannels.values())

    def _failure(self) -> str:
        errors = [s.last_error for s in self._subchannels.values() if s.last_error]
        return errors[0] if errors else self._resolve_error or f"connecting to {self.target}"

    def _changed(self, *, failed: bool = False) -> None:
        self._ready = [
            s.connection
            for s in self._subchannels.values()
            if s.connection is not None and s.connection.usable
        ]
        if failed and self._resolve_now is not None:
            self._resolve_now.set()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ---- name resolution ---------------------------------------------------------------

    async def _resolve_forever(self) -> None:
        assert self._resolve_now is not None
        retry_s = 1.0
        while True:
            if not await self._resolve():
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, _RESOLVE_EVERY_S)
                continue
            retry_s = 1.0
            self._resolve_now.clear()
            await asyncio.sleep(_RESOLVE_AT_MOST_EVERY_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_RESOLVE_EVERY_S - _RESOLVE_AT_MOST_EVERY_S):
                    await self._resolve_now.wait()

    async def _resolve(self) -> bool:
        """Follow the name's current addresses; False when it could not be resolved."""
        loop = asyncio.get_running_loop()
        if self._fixed is not None:
            self._follow(self._fixed)
            return True
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as error:
            # Keep the addresses already known (gRPC does too): a DNS hiccup is no outage.
            self._resolve_error = f"cannot resolve {self.host}: {error}"
            _log.warning("backend_resolve_failed", target=self.target, error=str(error))
            self._changed()
            return False
        self._resolve_error = ""
        self._follow(list(dict.fromkeys((str(info[4][0]), self.port) for info in infos)))
        return True

    def _follow(self, addresses: list[Address]) -> None:
        for address in addresses:
            if address not in self._subchannels:
                self._subchannels[address] = _Subchannel(self, address)
        for address in [a for a in self._subchannels if a not in addresses]:
            self._subchannels.pop(address).stop()
        self._changed()

    async def close(self, grace: float | None) -> None:
        """Stop connecting and close every connection once its calls end (within `grace`
        seconds if given; at once otherwise, as grpc.aio's close)."""
        self._closed = True
        if self._resolver is not None:
            self._resolver.cancel()
        subchannels = list(self._subchannels.values())
        self._subchannels.clear()
        connections = [s.connection for s in subchannels if s.connection is not None]
        for subchannel in subchannels:
            subchannel.stop()
        if grace:
            deadline = asyncio.get_running_loop().time() + grace
            while any(c.active_streams for c in connections):
                if asyncio.get_running_loop().time() >= deadline:
                    break
                await asyncio.sleep(0.01)
        for connection in connections:
            connection.abort(grpc.StatusCode.CANCELLED, "the channel was closed")
        self._changed()

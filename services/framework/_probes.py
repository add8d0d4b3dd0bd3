"""Readiness probes the stack supervisor polls: grpc.health.v1 Check, or an HTTP GET.

A gRPC service is ready when its overall health (service "") is SERVING; an HTTP service
(the edge, `http_health` in the registry) when its health path answers 200, which for the
edge means every backend it routes to is SERVING too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._registry import ServiceEntry

__all__ = ["Probe", "http_ok", "readiness_probe"]

Probe = Callable[[float], Awaitable[bool]]  # timeout in seconds → ready now?
_SERVING = health_pb2.HealthCheckResponse.SERVING


async def http_ok(host: str, port: int, path: str, timeout_s: float) -> bool:
    """True if `GET path` on host:port answers 200 within `timeout_s`; False for any other
    status, a refused connection or a timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                request = f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\n\r\n"
                writer.write(request.encode("ascii"))
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[1] == b"200"


@contextlib.asynccontextmanager
async def readiness_probe(entry: ServiceEntry, port: int) -> AsyncIterator[Probe]:
    """A probe for `entry` listening on 127.0.0.1:`port`, valid inside the context (a gRPC
    probe keeps one channel across polls)."""
    if entry.http_health is not None:
        path = entry.http_health

        async def http_probe(timeout_s: float) -> bool:
            return await http_ok("127.0.0.1", port, path, timeout_s)

        yield http_probe
        return
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def grpc_probe(timeout_s: float) -> bool:
            try:
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(reply.status == _SERVING)

        yield grpc_probe

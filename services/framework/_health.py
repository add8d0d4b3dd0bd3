"""grpc.health.v1 and server reflection wiring."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

__all__ = ["Health"]

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    """The health status of the overall server ("") and of each gRPC service it hosts."""

    def __init__(self, service_names: Iterable[str]) -> None:
        self._names = ["", *service_names]
        self._servicer = health.aio.HealthServicer()

    def register(self, server: Any) -> None:
        """Add the health and reflection services to `server` (before it starts)."""
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        reflection.enable_server_reflection(
            [*self._names[1:], health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )

    async def set_serving(self, serving: bool) -> None:
        """Report every name as SERVING or NOT_SERVING."""
        status = _SERVING if serving else _NOT_SERVING
        for name in self._names:
            await self._servicer.set(name, status)

    async def shut_down(self) -> None:
        """Report NOT_SERVING for good: later set() calls are ignored."""
        await self._servicer.enter_graceful_shutdown()

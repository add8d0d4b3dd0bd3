"""`/healthz`: the edge is up and every backend it routes to reports SERVING."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .grpc_client import Channel

__all__ = ["BackendHealth"]

_CHECK_TIMEOUT_S = 1.0
_SERVING = health_pb2.HealthCheckResponse.SERVING


class BackendHealth:
    """Checks each routed gRPC service on its backend's grpc.health.v1."""

    def __init__(self, services: Mapping[str, Channel]) -> None:
        self._checks = {
            name: health_pb2_grpc.HealthStub(channel).Check for name, channel in services.items()
        }

    async def _status(self, name: str) -> str:
        try:
            reply = await self._checks[name](
                health_pb2.HealthCheckRequest(service=name), timeout=_CHECK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            code: str = exc.code().name
            return code
        name_of: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return name_of

    async def report(self) -> tuple[int, bytes]:
        """200 with every service's status when all are SERVING, else 503."""
        names = sorted(self._checks)
        statuses = await asyncio.gather(*(self._status(name) for name in names))
        backends = dict(zip(names, statuses, strict=True))
        healthy = all(status == "SERVING" for status in statuses)
        body = {"status": "SERVING" if healthy else "NOT_SERVING", "backends": backends}
        return (200 if healthy else 503), json.dumps(body, separators=(",", ":")).encode()

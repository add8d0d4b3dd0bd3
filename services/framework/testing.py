"""pytest helpers: in-process servers on 127.0.0.1:0, health waits, caller metadata.

Waiting is always on grpc.health.v1 Watch, never on sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._app import ServiceApp
from ._config import Secret, ServiceSettings
from ._identity import CALLER_SERVICE_KEY, INTERNAL_TOKEN_KEY, MERCHANT_ID_KEY, USER_ID_KEY

__all__ = [
    "InProcessServer",
    "caller_metadata",
    "make_settings",
    "serve_in_process",
    "wait_until_serving",
]

T = TypeVar("T")
_SERVING = health_pb2.HealthCheckResponse.SERVING


def make_settings(service: str = "test", **overrides: Any) -> ServiceSettings:
    """ServiceSettings for a test server: port 0, in-memory SQLite, a fresh internal token."""
    values: dict[str, Any] = {
        "service": service,
        "port": 0,
        "database_url": Secret("sqlite+aiosqlite:///:memory:"),
        "internal_token": Secret(secrets.token_urlsafe(32)),
        "grace_period_s": 5.0,
    }
    values.update(overrides)
    return ServiceSettings(**values)


def caller_metadata(
    settings: ServiceSettings | None,
    *,
    service: str = "tests",
    user_id: str | None = None,
    merchant_id: str | None = None,
) -> tuple[tuple[str, str], ...]:
    """Metadata of an internal caller (with `settings`' token) acting for a user or merchant.

    With `settings=None` the identity headers go without the credential (to test refusal).
    """
    pairs = [(CALLER_SERVICE_KEY, service)]
    if settings is not None:
        pairs.append((INTERNAL_TOKEN_KEY, settings.internal_token.reveal()))
    if user_id:
        pairs.append((USER_ID_KEY, user_id))
    if merchant_id:
        pairs.append((MERCHANT_ID_KEY, merchant_id))
    return tuple(pairs)


async def wait_until_serving(address: str, *, service: str = "", timeout_s: float = 10.0) -> None:
    """Return once `address` reports SERVING for `service`.

    Raises TimeoutError after `timeout_s`.
    """
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service=service), wait_for_ready=True)

        async def serving() -> None:
            async for response in call:
                if response.status == _SERVING:
                    return

        try:
            await asyncio.wait_for(serving(), timeout_s)
        finally:
            call.cancel()


class _AddMetadata:
    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def _details(self, details: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return details._replace(metadata=metadata)


# One class per call kind: grpc.aio files an interceptor under its first kind only.
class _AddUnaryMetadata(_AddMetadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AddStreamMetadata(_AddMetadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


@dataclasses.dataclass
class InProcessServer:
    """A started ServiceApp and a plain channel to it (no client interceptors)."""

    app: ServiceApp
    port: int
    channel: grpc.aio.Channel
    _extra_channels: list[grpc.aio.Channel] = dataclasses.field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stub(self, stub_class: type[T], metadata: Sequence[tuple[str, str]] = ()) -> T:
        """A `stub_class` on this server; `metadata` (see caller_metadata) goes on every call."""
        channel = self.channel
        if metadata:
            interceptors = [_AddUnaryMetadata(metadata), _AddStreamMetadata(metadata)]
            channel = grpc.aio.insecure_channel(self.address, interceptors=interceptors)
            self._extra_channels.append(channel)
        return stub_class(channel)  # type: ignore[call-arg]


@asynccontextmanager
async def serve_in_process(
    app_or_factory: ServiceApp | Callable[[], ServiceApp],
) -> AsyncIterator[InProcessServer]:
    """Start the app on 127.0.0.1:0 (metrics, if on, on a free port too), wait for SERVING,
    yield it, then stop it."""
    app = app_or_factory if isinstance(app_or_factory, ServiceApp) else app_or_factory()
    # Free ports only: settings loaded from the registry carry `make run`'s fixed ports
    # (gRPC and metrics), which a developer's running stack holds. Metrics stay off if off.
    metrics_port = min(app.settings.metrics_port, 0)
    app.settings = dataclasses.replace(
        app.settings, host="127.0.0.1", port=0, metrics_port=metrics_port
    )
    port = await app.start()
    try:
        address = f"127.0.0.1:{port}"
        await wait_until_serving(address)
        async with grpc.aio.insecure_channel(address) as channel:
            running = InProcessServer(app, port, channel)
            try:
                yield running
            finally:
                for extra in running._extra_channels:
                    await extra.close()
    finally:
        await app.stop()


def __getattr__(name: str) -> Any:
    # The real-process stack helper lives with the supervisor it reuses; imported on demand
    # so in-process tests do not pay for it.
    if name in ("start_stack", "Stack"):
        return getattr(importlib.import_module("._stack", __package__), name)
    raise AttributeError(name)

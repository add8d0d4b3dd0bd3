"""Composition root: settings → descriptors → channels → routes → gateway → HTTP server."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Mapping

import grpc
import structlog

from services.framework import configure_logging, register_secret

from .auth import INTERNAL, USER, AccessGate, Authenticator
from .config import EdgeSettings, load_edge_settings
from .cors import Cors
from .descriptors import load_descriptor_set
from .gateway import Gateway
from .health import BackendHealth
from .routes import Route, compile_route
from .routing import Router
from .server import serve
from .tokens import AUTH_SERVICE, BearerJwtAuthenticator

__all__ = ["build_gateway", "main", "run"]

_log = structlog.get_logger("edge")
# As framework.connect(): retry only UNAVAILABLE (the request never reached a handler, so a
# retry cannot apply a change twice), inside the call's deadline.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def _channel(address: str, channels: dict[str, grpc.aio.Channel]) -> grpc.aio.Channel:
    if address not in channels:
        channels[address] = grpc.aio.insecure_channel(
            address,
            options=[("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)],
        )
    return channels[address]


def build_gateway(
    settings: EdgeSettings,
    channels: dict[str, grpc.aio.Channel],
    authenticators: Mapping[int, Authenticator] | None = None,
) -> tuple[Gateway, int]:
    """The gateway and its number of routes; call inside the running loop (channels bind to
    it). Raises TemplateError/ValueError for an annotation that cannot be served."""
    pool, methods = load_descriptor_set(settings.descriptor_set, settings.default_access)
    router: Router[Route] = Router()
    served: dict[str, grpc.aio.Channel] = {}
    count = 0
    for spec in methods:
        if INTERNAL in spec.access:
            continue  # other services only: never reachable from outside
        address = settings.backends.get(spec.service, settings.default_backend)
        if address is None:
            _log.warning("edge_service_without_backend", service=spec.service)
            continue
        channel = _channel(address, channels)
        served[spec.service] = channel
        for binding in spec.bindings:
            route = compile_route(spec, binding, channel, pool)
            router.add(binding.http_method, route.template, route)
            count += 1
    token = settings.internal_token.reveal() if settings.internal_token else None
    authenticators = dict(authenticators or {})
    auth_address = settings.backends.get(AUTH_SERVICE)
    if USER not in authenticators and auth_address is not None:
        # Fronting PayNow: USER routes verify JWTs against auth's published keys.
        authenticators[USER] = BearerJwtAuthenticator.from_auth(
            _channel(auth_address, channels),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    gateway = Gateway(
        router,
        pool,
        gate=AccessGate(authenticators),
        health=BackendHealth(served),
        cors=Cors(settings.cors_origins),
        deadline_s=settings.deadline_ms / 1000,
        internal_token=token,
    )
    return gateway, count


async def run(settings: EdgeSettings) -> None:
    """Serve until SIGINT or SIGTERM, then close the listener and the backend channels."""
    channels: dict[str, grpc.aio.Channel] = {}
    gateway, count = build_gateway(settings, channels)
    server = await serve(gateway.handle, settings.host, settings.port, settings.body_limit_bytes)
    port = server.sockets[0].getsockname()[1]
    _log.info("edge_started", url=f"http://{settings.host}:{port}", routes=count)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()
    for channel in channels.values():
        await channel.close()
    _log.info("edge_stopped")


def main() -> None:
    """`python -m services.edge`: read settings, configure logging, serve."""
    settings = load_edge_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.internal_token:
        register_secret(settings.internal_token.reveal())
    asyncio.run(run(settings))

"""Composition root: settings → descriptors → channels → routes → gateway → HTTP server."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping

import structlog

from services.framework import ConfigError, configure_logging, register_secret
from services.framework._metrics import serve_metrics
from services.framework._tracing import configure_tracing

from .api_keys import API_KEY_SERVICE, ApiKeyAuthenticator, verify_with_merchant
from .auth import INTERNAL, MERCHANT, USER, AccessGate, Authenticator
from .config import EdgeSettings, load_edge_settings
from .cors import Cors
from .descriptors import load_descriptor_set
from .gateway import Gateway
from .grpc_client import Channel
from .health import BackendHealth
from .rate_limits import RateLimiter, load_budgets
from .rate_limits_redis import RedisBuckets
from .routes import Route, compile_route
from .routing import Router
from .server import Limits, serve
from .tokens import AUTH_SERVICE, BearerJwtAuthenticator, jwks_from_auth, jwks_from_file

__all__ = ["build_gateway", "main", "run"]

_log = structlog.get_logger("edge")


def _channel(address: str, channels: dict[str, Channel]) -> Channel:
    if address not in channels:
        # Balancing, reconnects and retries as framework.connect()'s grpc.aio channels
        # (grpc_client/channel.py says where they differ and why).
        channels[address] = Channel(address)
    return channels[address]


def _default_authenticators(
    settings: EdgeSettings, channels: dict[str, Channel], token: str | None
) -> dict[int, Authenticator]:
    """USER: JWTs against a JWKS file, else auth's published keys; MERCHANT: API keys
    through merchant's VerifyApiKey. A level with neither source gets no authenticator, so
    its routes answer 401."""
    found: dict[int, Authenticator] = {}
    issuer, audience = settings.jwt_issuer, settings.jwt_audience
    auth_address = settings.backends.get(AUTH_SERVICE)
    if settings.jwks_file is not None:
        fetch = jwks_from_file(settings.jwks_file)
    elif auth_address is not None:
        fetch = jwks_from_auth(_channel(auth_address, channels))
    else:
        fetch = None
    if fetch is not None:
        found[USER] = BearerJwtAuthenticator.from_source(
            fetch, issuer=issuer, audience=audience, cache_s=settings.jwt_cache_s
        )
    merchant_address = settings.backends.get(API_KEY_SERVICE)
    if merchant_address is not None:
        if token is None:
            _log.warning("edge_without_internal_token", effect="every API key is refused")
        found[MERCHANT] = ApiKeyAuthenticator(
            verify_with_merchant(_channel(merchant_address, channels), token),
            ttl_s=settings.api_key_cache_s,
            max_entries=settings.api_key_cache_entries,
        )
    return found


def _rate_limiter(settings: EdgeSettings, routes: list[Route]) -> RateLimiter:
    """The limiter of the settings' budgets; ConfigError when a route's class is missing."""
    store = None
    if settings.redis_url is not None:
        store = RedisBuckets(
            settings.redis_url.reveal(),
            prefix=settings.redis_prefix,
            timeout_s=settings.redis_timeout_ms / 1000,
        )
    limiter = RateLimiter(load_budgets(settings.rate_limits_file), store)
    # `credential-failures` may be left out: failed sign-ins then go uncounted.
    needed: dict[str, str] = {}
    for route in routes:
        if route.rate_limit_class:
            needed.setdefault(route.rate_limit_class, route.spec.path)
        else:
            for level, name in ((USER, "user"), (MERCHANT, "merchant")):
                if level in route.spec.access:
                    needed.setdefault(name, route.spec.path)
    limiter.require(needed)
    return limiter


def build_gateway(
    settings: EdgeSettings,
    channels: dict[str, Channel],
    authenticators: Mapping[int, Authenticator] | None = None,
) -> tuple[Gateway, int]:
    """The gateway and its number of routes; call inside the running loop (channels bind to
    it). Raises TemplateError/ValueError for an annotation that cannot be served."""
    pool, methods = load_descriptor_set(settings.descriptor_set, settings.default_access)
    router: Router[Route] = Router()
    served: dict[str, Channel] = {}
    routes: list[Route] = []
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
            routes.append(route)
    token = settings.internal_token.reveal() if settings.internal_token else None
    authenticators = {
        **_default_authenticators(settings, channels, token),
        **(authenticators or {}),
    }
    gateway = Gateway(
        router,
        pool,
        gate=AccessGate(authenticators),
        health=BackendHealth(served),
        cors=Cors(settings.cors_origins),
        deadline_s=settings.deadline_ms / 1000,
        internal_token=token,
        json_depth=settings.json_depth_limit,
        limiter=_rate_limiter(settings, routes),
    )
    return gateway, len(routes)


async def run(settings: EdgeSettings) -> None:
    """Serve until SIGINT or SIGTERM, then close the listener and the backend channels."""
    channels: dict[str, Channel] = {}
    gateway, count = build_gateway(settings, channels)
    server = await serve(
        gateway.handle,
        settings.host,
        settings.port,
        Limits(
            body_bytes=settings.body_limit_bytes,
            url_bytes=settings.url_limit_bytes,
            header_bytes=settings.header_limit_bytes,
            header_count=settings.header_limit_count,
            read_timeout_s=settings.read_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            max_connections=settings.max_connections,
        ),
        settings.trusted_proxies,
    )
    port = server.sockets[0].getsockname()[1]
    metrics_port = None
    if settings.metrics_port >= 0:
        metrics_port = serve_metrics(settings.host, settings.metrics_port)
    _log.info(
        "edge_started",
        url=f"http://{settings.host}:{port}",
        routes=count,
        metrics_port=metrics_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Stop accepting, then let requests in flight finish within the grace period.
    server.close()
    if not await gateway.drained(settings.grace_period_s):
        _log.warning("edge_drain_timed_out", grace_period_s=settings.grace_period_s)
    await server.wait_closed()
    for channel in channels.values():
        await channel.close()
    await gateway.close()
    _log.info("edge_stopped")


def main() -> None:
    """`python -m services.edge`: read settings, configure logging, serve."""
    try:
        settings = load_edge_settings()
        # Read here too, so a bad rate limits file is one line, not a traceback from the loop.
        load_budgets(settings.rate_limits_file)
    except ConfigError as error:
        sys.exit(f"edge: {error}")
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing("edge")
    # The edge process configures logging once and never again, so its loggers may cache
    # their processor chain: an uncached structlog proxy rebuilds it on every call, which
    # measured about 10 µs of the one log line each request writes (docs/benchmarks.md).
    structlog.configure(cache_logger_on_first_use=True)
    if settings.internal_token:
        register_secret(settings.internal_token.reveal())
    if settings.redis_url:
        register_secret(settings.redis_url.reveal())
    try:
        asyncio.run(run(settings))
    except ConfigError as error:
        sys.exit(f"edge: {error}")

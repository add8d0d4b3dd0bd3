"""Outgoing calls: cached grpc.aio channels that carry the caller's context on.

Python gRPC does not propagate deadlines, request ids or identity from the call being served
to the calls it makes; these interceptors do, so every hop shares one budget and one id.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, TypeVar

import grpc

from . import _identity
from ._config import ServiceSettings
from ._identity import (
    CALLER_SERVICE_KEY,
    INTERNAL_TOKEN_KEY,
    MERCHANT_ID_KEY,
    REQUEST_ID_KEY,
    USER_ID_KEY,
    current_caller,
)
from ._tracing import inject_context

__all__ = ["CHANNEL_OPTIONS", "close_channels", "connect", "outgoing_timeout"]

T = TypeVar("T")

# Retries happen in the channel (gRFC A6), not in a loop: only UNAVAILABLE, which means the
# request never reached a handler, so retrying cannot apply a change twice.
_SERVICE_CONFIG = json.dumps(
    {
        # Spread calls over every address the name resolves to: with `dns:///` targets and a
        # headless Kubernetes Service that is every pod (pick_first would pin one pod).
        "loadBalancingConfig": [{"round_robin": {}}],
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
        ],
    }
)

# Every PayNow channel's options: the service config above, and a reconnect back-off capped
# at 2 s (gRPC's default grows to two minutes, so a service restarted after a crash would
# stay unreachable for its callers long after it is back). The edge's own client
# (services/edge/grpc_client) follows the same policy; keep the two in step.
CHANNEL_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

_channels: dict[tuple[asyncio.AbstractEventLoop, str, ServiceSettings], grpc.aio.Channel] = {}


def outgoing_timeout(default_s: float, requested_s: float | None = None) -> float:
    """The timeout for an outgoing call: the smallest of the default, the requested timeout
    and what remains of the call being served. May be <= 0 when nothing remains."""
    timeout = default_s if requested_s is None else min(default_s, requested_s)
    deadline = _identity._deadline.get()
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
    return timeout


class _ContextPropagation:
    def __init__(self, settings: ServiceSettings) -> None:
        self._service = settings.service
        self._token = settings.internal_token.reveal()
        self._default_s = settings.default_deadline_ms / 1000

    def _details(self, details: Any) -> Any:
        timeout = outgoing_timeout(self._default_s, details.timeout)
        if timeout <= 0:
            # Fail here, as the server would a moment later, without spending a round trip.
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="deadline exceeded before the call was sent",
            )
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        caller = current_caller()
        extra = {
            REQUEST_ID_KEY: _identity.current_request_id(),
            INTERNAL_TOKEN_KEY: self._token,
            CALLER_SERVICE_KEY: self._service,
            USER_ID_KEY: caller.user_id,
            MERCHANT_ID_KEY: caller.merchant_id,
        }
        for key, value in extra.items():
            # An explicit value from the caller of connect() wins (the edge sets the user).
            if value and key not in metadata:
                metadata.add(key, value)
        # The W3C trace context, so the callee's span continues this trace.
        carrier: dict[str, str] = {}
        inject_context(carrier)
        for key, value in carrier.items():
            if key not in metadata:
                metadata.add(key, value)
        return grpc.aio.ClientCallDetails(
            details.method, timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first call kind it implements only (an if/elif
# chain in Channel.__init__), so one class per kind, or streams would pass unintercepted.
class _UnaryPropagation(_ContextPropagation, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamPropagation(_ContextPropagation, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


def connect(address: str, stub_class: type[T], *, settings: ServiceSettings) -> T:
    """Return a `stub_class` on a cached channel to `address` that propagates the deadline,
    request id, internal credential and caller identity, and retries UNAVAILABLE.

    Call it inside the running event loop (grpc.aio channels bind to it); raises nothing
    itself: connection problems surface on the first call.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # A channel made outside the loop binds to another one and fails on first use with
        # "attached to a different loop"; say so where the mistake is.
        raise RuntimeError(
            "connect() needs the running event loop: call it when a request is served, "
            "not while wiring the app"
        ) from None
    key = (loop, address, settings)
    channel = _channels.get(key)
    if channel is None:
        channel = grpc.aio.insecure_channel(
            address,
            options=CHANNEL_OPTIONS,
            interceptors=[_UnaryPropagation(settings), _StreamPropagation(settings)],
        )
        _channels[key] = channel
    return stub_class(channel)  # type: ignore[call-arg]


async def close_channels() -> None:
    """Close every channel connect() opened; stubs on them fail afterwards."""
    channels = list(_channels.values())
    _channels.clear()
    for channel in channels:
        await channel.close()

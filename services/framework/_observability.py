"""The middleware step that makes each RPC observable: a server span and its metrics.

It runs right after the request id is known and before the access log, so the access log
line, every domain log line and every downstream call of the RPC carry its trace.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._metrics import MethodMetrics, RpcMetrics
from ._rpc import Handler, RpcCall
from ._tracing import extract_context, tracer

__all__ = ["Observability"]


class Observability:
    """A span per RPC (child of the caller's, from `traceparent`) and gRPC metrics."""

    def __init__(self, metrics: RpcMetrics | None = None) -> None:
        self._metrics = metrics or RpcMetrics.of()
        self._per_method: dict[tuple[str, str], MethodMetrics] = {}

    def _method(self, call: RpcCall) -> MethodMetrics:
        policy = call.policy
        key = (policy.service, policy.method)
        found = self._per_method.get(key)
        if found is None:
            found = self._metrics.for_method(policy.service, policy.method, policy.streaming)
            self._per_method[key] = found
        return found

    async def __call__(self, call: RpcCall, next_: Handler) -> Any:
        metrics = self._method(call)
        metrics.started.inc()
        metrics.in_flight.inc()
        started = time.perf_counter()
        policy = call.policy
        with tracer().start_as_current_span(
            f"{policy.service}/{policy.method}",
            context=extract_context(call.metadata),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": policy.service,
                "rpc.method": policy.method,
                "paynow.request_id": call.request_id,
            },
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            try:
                with structlog.contextvars.bound_contextvars(trace_id=trace_id):
                    return await next_(call)
            finally:
                metrics.in_flight.dec()
                metrics.finished(call.code, time.perf_counter() - started)
                _record_outcome(span, call)


def _record_outcome(span: trace.Span, call: RpcCall) -> None:
    span.set_attribute("rpc.grpc.status_code", call.code.value[0])
    if call.caller.user_id:
        span.set_attribute("paynow.user_id", call.caller.user_id)
    if call.caller.merchant_id:
        span.set_attribute("paynow.merchant_id", call.caller.merchant_id)
    if call.code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, call.reason or call.code.name))

"""The edge's HTTP metrics and its part of each request's trace.

Metrics are labelled by route template (`/v1/accounts/{id}`), never by raw path, so ids in
URLs cannot grow the label set; an unmatched request is labelled `unmatched`.
A request's span continues the client's W3C `traceparent` if it sent one, and the edge's
calls to backends carry the trace on, so edge → merchant → account is one trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import REGISTRY, CollectorRegistry

__all__ = ["EdgeMetrics", "trace_carrier"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TRACE_HEADERS = (b"traceparent", b"tracestate")


class EdgeMetrics:
    """http_requests_total, http_request_duration_seconds and http_requests_in_flight."""

    _instances: dict[int, EdgeMetrics] = {}

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests the edge answered, by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time the edge took to answer, by route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being answered now.", registry=registry
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @classmethod
    def of(cls, registry: CollectorRegistry = REGISTRY) -> EdgeMetrics:
        found = cls._instances.get(id(registry))
        if found is None:
            found = cls._instances[id(registry)] = cls(registry)
        return found

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)


def trace_carrier(headers: Mapping[bytes, bytes]) -> dict[str, str] | None:
    """The client's trace headers as a propagation carrier, or None if it sent none."""
    carrier = {
        name.decode(): headers[name].decode("latin-1") for name in _TRACE_HEADERS if name in headers
    }
    return carrier or None

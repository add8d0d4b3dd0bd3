"""Prometheus metrics of a service's RPCs, on a port of their own.

Names and labels follow the gRPC ecosystem's Prometheus middleware (go-grpc-prometheus,
py-grpc-prometheus), so existing dashboards and alerts work unchanged:

    grpc_server_started_total{grpc_type, grpc_service, grpc_method}
    grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
    grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}   (histogram)
    grpc_server_in_flight{grpc_service, grpc_method}                     (gauge)

Labels are method names from the registered descriptors and status code names: a bounded
set, whatever callers send. The metrics port is never the service's own port, so a metrics
scrape is not an RPC and an RPC port exposes nothing else.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

__all__ = ["MethodMetrics", "RpcMetrics", "serve_metrics"]

# Unary RPCs here take milliseconds; the tail buckets catch slow databases and deadlines.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RpcMetrics:
    """The RPC metric families, registered once per registry."""

    _lock = threading.Lock()
    _by_registry: dict[int, RpcMetrics] = {}

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", labels, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, whatever their outcome.",
            [*labels, "grpc_code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its end, as the server saw it.",
            labels,
            buckets=_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs being handled right now.",
            ["grpc_service", "grpc_method"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry = REGISTRY) -> RpcMetrics:
        """The families in `registry`, created on first use (one set per process)."""
        with cls._lock:
            found = cls._by_registry.get(id(registry))
            if found is None:
                found = cls._by_registry[id(registry)] = cls(registry)
            return found

    def for_method(self, service: str, method: str, streaming: bool) -> MethodMetrics:
        """Label children for one method, resolved once, not per call."""
        kind = "server_stream" if streaming else "unary"
        return MethodMetrics(
            started=self.started.labels(kind, service, method),
            seconds=self.seconds.labels(kind, service, method),
            in_flight=self.in_flight.labels(service, method),
            handled=self.handled,
            labels=(kind, service, method),
        )


@dataclasses.dataclass
class MethodMetrics:
    started: Any
    seconds: Any
    in_flight: Any
    handled: Counter
    labels: tuple[str, str, str]
    _by_code: dict[grpc.StatusCode, Any] = dataclasses.field(default_factory=dict)

    def finished(self, code: grpc.StatusCode, duration_s: float) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self.handled.labels(*self.labels, code.name)
        child.inc()
        self.seconds.observe(duration_s)


def serve_metrics(host: str, port: int) -> int:
    """Serve the default registry's metrics over HTTP on host:port (0 picks a free port).

    Returns the bound port; raises OSError if the port is taken.
    """
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)

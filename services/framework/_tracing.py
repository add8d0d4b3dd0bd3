"""OpenTelemetry traces: a span per RPC and per database transaction, one trace per request.

The W3C `traceparent` travels in gRPC metadata between services (the edge takes it from
the HTTP request), so one request through edge → merchant → account is one trace. Spans
always get real ids, so every log line carries a `trace_id` even when nothing is exported
(they are then not recorded, which keeps their cost small); export is off unless the
standard OpenTelemetry variables turn it on:
`OTEL_TRACES_EXPORTER=otlp` or `OTEL_EXPORTER_OTLP_ENDPOINT` / `..._TRACES_ENDPOINT`
(gRPC OTLP; `OTEL_EXPORTER_OTLP_INSECURE=true` for a plain-text collector).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

__all__ = [
    "configure_tracing",
    "current_trace_id",
    "extract_context",
    "inject_context",
    "recording",
    "shutdown_tracing",
    "span",
    "tracer",
]

_provider: TracerProvider | None = None
_recording = False


def _export_enabled(environ: Mapping[str, str]) -> bool:
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> None:
    """Install the tracer provider once per process, exporting only when OTEL_* asks to."""
    global _provider, _recording  # noqa: PLW0603 - one provider per process, as OTel requires
    if _provider is not None:
        return
    env = os.environ if environ is None else environ
    name = env.get("OTEL_SERVICE_NAME") or f"paynow-{service}"
    exporting = _export_enabled(env)
    # Not exporting: spans still get ids (log lines carry trace_id, traceparent flows on),
    # but are not recorded, which costs a fraction of a recorded span on every request.
    # OTEL_TRACES_SAMPLER, when set, decides instead, as OpenTelemetry specifies.
    _recording = exporting or bool(env.get("OTEL_TRACES_SAMPLER"))
    sampler = None if _recording else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({"service.name": name}), sampler=sampler)
    if exporting:
        # Imported only when exporting: it pulls in the OTLP client.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider


def recording() -> bool:
    """True if spans are recorded (exported, or a sampler was asked for); when False a hot
    path may skip span objects and pass the W3C trace context on by itself."""
    return _recording


def shutdown_tracing() -> None:
    """Flush spans still buffered; called on graceful shutdown."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def tracer() -> trace.Tracer:
    # get_tracer builds a proxy each call; the tracer itself is stateless, so keep one.
    global _tracer  # noqa: PLW0603 - a cache of an immutable object
    if _tracer is None:
        _tracer = trace.get_tracer("paynow")
    return _tracer


_tracer: trace.Tracer | None = None


def extract_context(carrier: Mapping[str, Any]) -> otel_context.Context:
    """The trace context an incoming call carries (`traceparent`, `tracestate`)."""
    return propagate.extract(carrier)


def inject_context(carrier: MutableMapping[str, str]) -> None:
    """Add the current trace context to outgoing metadata."""
    propagate.inject(carrier)


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or None outside a span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A child span of the current one (a database transaction, a downstream step)."""
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current

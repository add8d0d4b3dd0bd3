"""The edge's own W3C trace context when no span is recorded."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from services.edge.telemetry import AccessLog, EdgeMetrics, TraceParent
from services.framework import configure_logging, register_secret
from services.framework._logging import REDACTED


def test_a_valid_incoming_traceparent_keeps_its_trace_id() -> None:
    """The client's trace continues: same trace id and flags, a new span id for the edge."""
    incoming = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    parent = TraceParent(incoming)
    assert parent.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    version, trace_id, span_id, flags = parent.value.split("-")
    assert (version, trace_id, flags) == ("00", parent.trace_id, "01")
    assert span_id != "00f067aa0ba902b7"
    assert len(span_id) == 16


def test_a_missing_or_malformed_traceparent_starts_a_new_trace() -> None:
    """Garbage or an all-zero id is replaced by a fresh random trace id."""
    for incoming in (None, b"nonsense", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01"):
        parent = TraceParent(incoming)
        assert len(parent.trace_id) == 32
        assert parent.trace_id != "0" * 32
    assert TraceParent(None).trace_id != TraceParent(None).trace_id


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", "json", stream=out, force=True)
    try:
        yield out
    finally:
        configure_logging(force=True)


def _line(log: AccessLog, request_id: str = "req-1") -> None:
    log.write("GET", "GET /v1/x/{id}", 200, duration_ms=1.5, request_id=request_id, trace_id="ab")


async def test_the_access_line_has_the_shape_structlog_writes(json_logs: io.StringIO) -> None:
    _line(AccessLog())
    await asyncio.sleep(0)  # the flush runs once per loop pass
    structlog.get_logger("edge").info(
        "http_request",
        method="GET",
        route="GET /v1/x/{id}",
        status=200,
        duration_ms=1.5,
        request_id="req-1",
        trace_id="ab",
    )
    fast, slow = (json.loads(line) for line in json_logs.getvalue().splitlines())
    assert list(fast) == list(slow)
    assert {k: v for k, v in fast.items() if k != "time"} == {
        k: v for k, v in slow.items() if k != "time"
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fast["time"])
    assert fast["time"][:16] == slow["time"][:16]


async def test_the_access_line_scrubs_registered_secrets(json_logs: io.StringIO) -> None:
    register_secret("internal-token-value")
    _line(AccessLog(), request_id="internal-token-value")
    await asyncio.sleep(0)
    assert "internal-token-value" not in json_logs.getvalue()
    assert json.loads(json_logs.getvalue())["request_id"] == REDACTED


async def test_the_access_line_follows_the_level_and_console_format() -> None:
    out = io.StringIO()
    try:
        configure_logging("warning", "json", stream=out, force=True)
        _line(AccessLog())
        configure_logging("info", "console", stream=out, force=True)
        _line(AccessLog())
        await asyncio.sleep(0)
    finally:
        configure_logging(force=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # the warning level hides it; the console renders it
    assert "http_request" in lines[0]
    assert not lines[0].startswith("{")


async def test_access_lines_are_written_out_within_the_flush_interval() -> None:
    """Lines wait in the stream's buffer (no write per request) and reach the output within
    FLUSH_INTERVAL_S, or at once on flush()."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    try:
        configure_logging("info", "json", stream=stream, force=True)
        log = AccessLog()
        _line(log)
        assert raw.getvalue() == b""
        await asyncio.sleep(AccessLog.FLUSH_INTERVAL_S * 2)
        assert json.loads(raw.getvalue())["event"] == "http_request"
        _line(log, request_id="req-2")
        log.flush()
        assert json.loads(raw.getvalue().splitlines()[-1])["request_id"] == "req-2"
    finally:
        configure_logging(force=True)


def test_the_route_metrics_read_as_prometheus_client_would_write_them() -> None:
    """Counts by route and status, a cumulative histogram with an exact sum, and in-flight."""
    registry = CollectorRegistry()
    metrics = EdgeMetrics(registry)
    route = "GET /v1/x/{id}"
    for seconds in (0.0005, 0.001, 0.003, 0.2, 30.0):
        metrics.observe("GET", route, 200, seconds)
    metrics.observe("GET", route, 404, 0.002)
    metrics.in_flight = 3

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("http_requests_total", method="GET", route=route, status="200") == 5
    assert value("http_requests_total", method="GET", route=route, status="404") == 1
    bucket = "http_request_duration_seconds_bucket"
    assert value(bucket, method="GET", route=route, le="0.001") == 2  # `le` is inclusive
    assert value(bucket, method="GET", route=route, le="0.005") == 4
    assert value(bucket, method="GET", route=route, le="10.0") == 5
    assert value(bucket, method="GET", route=route, le="+Inf") == 6
    assert value("http_request_duration_seconds_count", method="GET", route=route) == 6
    total = value("http_request_duration_seconds_sum", method="GET", route=route)
    assert total == pytest.approx(30.2065)
    assert value("http_requests_in_flight") == 3
    assert b"# TYPE http_requests_total counter" in generate_latest(registry)

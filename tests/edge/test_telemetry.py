"""The edge's own W3C trace context when no span is recorded."""

from __future__ import annotations

from services.edge.telemetry import TraceParent


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

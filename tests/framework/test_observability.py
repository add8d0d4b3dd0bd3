"""Every RPC is counted, timed and traced; one request is one trace across services."""

from __future__ import annotations

import urllib.request

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc
from services.framework import connect
from services.framework.testing import caller_metadata, make_settings, serve_in_process
from tests.framework.fakes import ACCOUNT_ID, USER_ID, FakeAccountServicer, make_app

GET = account_service_pb2.GetAccountRequest(id=ACCOUNT_ID)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Finished spans of this process (the provider the framework installed, or a new one)."""
    from services.framework._tracing import configure_tracing

    configure_tracing("tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


async def test_metrics_count_each_rpc_by_method_and_code() -> None:
    """The metrics port reports handled RPCs with their method and status code."""
    settings = make_settings("account", metrics_port=0)
    async with serve_in_process(make_app(settings, FakeAccountServicer())) as server:
        stub = server.stub(
            account_service_pb2_grpc.AccountServiceStub,
            caller_metadata(settings, service="edge", user_id=USER_ID),
        )
        for _ in range(3):
            await stub.GetAccount(GET)
        assert server.app.metrics_port
        text = _scrape(server.app.metrics_port)
    line = (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="GetAccount",'
        'grpc_service="paynow.account.v1.AccountService",grpc_type="unary"}'
    )
    counted = [row for row in text.splitlines() if row.startswith(line)]
    assert counted
    assert float(counted[0].split()[-1]) >= 3
    assert "grpc_server_handling_seconds_bucket" in text
    assert "grpc_server_in_flight" in text


async def test_one_request_is_one_trace_across_services(spans: InMemorySpanExporter) -> None:
    """The back service's span is a child of the front's, in the same trace."""
    token = make_settings().internal_token
    back_settings = make_settings("back", internal_token=token)
    front_settings = make_settings("front", internal_token=token)
    async with serve_in_process(make_app(back_settings, FakeAccountServicer())) as back:
        downstream = connect(
            back.address, account_service_pb2_grpc.AccountServiceStub, settings=front_settings
        )
        async with serve_in_process(
            make_app(front_settings, FakeAccountServicer(downstream))
        ) as front:
            spans.clear()
            stub = front.stub(
                account_service_pb2_grpc.AccountServiceStub,
                caller_metadata(front_settings, service="edge", user_id=USER_ID),
            )
            await stub.GetAccount(GET)
    servers = [s for s in spans.get_finished_spans() if s.name.endswith("/GetAccount")]
    assert len(servers) == 2
    front_span, back_span = sorted(servers, key=lambda s: s.start_time or 0)
    assert front_span.context.trace_id == back_span.context.trace_id
    assert back_span.parent is not None
    assert back_span.parent.span_id == front_span.context.span_id
    assert front_span.attributes is not None
    assert front_span.attributes["paynow.request_id"]


async def test_a_failed_rpc_marks_its_span_as_an_error(spans: InMemorySpanExporter) -> None:
    """A DomainError sets the span's status to ERROR with the reason."""
    settings = make_settings("account")
    async with serve_in_process(make_app(settings, FakeAccountServicer())) as server:
        spans.clear()
        stub = server.stub(account_service_pb2_grpc.AccountServiceStub)
        with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal: the span is the point
            await stub.GetAccount(GET)
    (span,) = [s for s in spans.get_finished_spans() if s.name.endswith("/GetAccount")]
    assert span.status.status_code.name == "ERROR"

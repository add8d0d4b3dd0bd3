"""Operators see what each request did: metrics on every process, one trace per request.

The whole stack runs as real processes, as `make run` starts it, with every process
exporting spans to an OTLP receiver built from the OpenTelemetry packages.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.e2e.paynow_http import PayNow, create_payment, open_shop, running_paynow, sign_up

pytestmark = pytest.mark.e2e


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []  # (service.name, span)
        self.arrived = asyncio.Event()

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope in resource_spans.scope_spans:
                self.spans += [(service, span) for span in scope.spans]
        self.arrived.set()
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    server = grpc.aio.server()
    kept = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(kept, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield kept, port
    await server.stop(0)


@pytest.fixture(scope="module")
async def paynow(
    tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, int]
) -> AsyncIterator[PayNow]:
    _, port = receiver
    async with running_paynow(
        tmp_path_factory.mktemp("observability") / "data",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY="100",  # export within a tenth of a second
    ) as running:
        yield running


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels_text, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


async def pay_once(paynow: PayNow) -> tuple[str, str]:
    """A full payment over HTTP; returns (the approving request's id, the payment id)."""
    http = paynow.http
    payer, payer_token = await sign_up(http, "payer")
    _, owner_token = await sign_up(http, "owner")
    await http.call(
        "POST",
        f"/v1/accounts/{payer}:deposit",
        {"amountMinor": "500", "currencyCode": "EUR"},
        token=payer_token,
        Idempotency_Key=secrets.token_hex(8),
    )
    _, key = await open_shop(http, owner_token)
    payment = await create_payment(http, key, 200)
    request_id = "approve-" + secrets.token_hex(6)
    approved = await http.call(
        "POST",
        f"/v1/payments/{payment['id']}:approve",
        {},
        token=payer_token,
        Idempotency_Key=secrets.token_hex(8),
        x_request_id=request_id,
    )
    assert approved.status == 200, approved.body
    return request_id, payment["id"]


async def test_every_process_counts_its_rpcs_by_method_and_code(paynow: PayNow) -> None:
    """After real traffic, each service's metrics port reports its RPCs with method and code."""
    await pay_once(paynow)
    ports = paynow.stack.metrics_ports
    account = scrape(ports["account"])
    merchant = scrape(ports["merchant"])
    auth = scrape(ports["auth"])
    edge = scrape(ports["edge"])
    handled = "grpc_server_handled_total"
    assert sample(account, handled, grpc_method="Transfer", grpc_code="OK") >= 1
    assert sample(account, handled, grpc_method="Deposit", grpc_code="OK") >= 1
    assert sample(merchant, handled, grpc_method="ApprovePayment", grpc_code="OK") >= 1
    assert sample(merchant, handled, grpc_method="VerifyApiKey", grpc_code="OK") >= 1
    assert sample(auth, handled, grpc_method="Login", grpc_code="OK") >= 2
    assert sample(account, "grpc_server_handling_seconds_count", grpc_method="Transfer") >= 1
    approve_route = "POST /v1/payments/{id}:approve"
    assert sample(edge, "http_requests_total", route=approve_route, status="200") >= 1
    assert "/v1/payments/pay_" not in edge  # labels are route templates, never raw paths


async def test_one_approval_is_one_trace_from_edge_to_account(
    paynow: PayNow, receiver: tuple[Receiver, int]
) -> None:
    """The approval's spans in edge, merchant and account share one trace and its request id."""
    kept, _ = receiver
    request_id, _ = await pay_once(paynow)

    def approval_spans() -> list[tuple[str, object]]:
        ids = {
            span.trace_id
            for _, span in kept.spans
            if any(
                a.key == "paynow.request_id" and a.value.string_value == request_id
                for a in span.attributes
            )
        }
        return [(service, span) for service, span in kept.spans if span.trace_id in ids]

    wanted = {
        ("paynow-edge", "POST /v1/payments/{id}:approve"),
        ("paynow-merchant", "paynow.merchant.v1.PaymentService/ApprovePayment"),
        ("paynow-account", "paynow.account.v1.AccountService/Transfer"),
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    # Spans arrive in batches per process, a child's often before its parent's: wait for
    # the very spans asserted on, not merely for each service to have sent something.
    while not wanted <= {(service, span.name) for service, span in approval_spans()}:
        if loop.time() > deadline:
            pytest.fail(f"spans seen: {sorted({s for s, _ in kept.spans})}")
        kept.arrived.clear()
        await asyncio.wait_for(kept.arrived.wait(), timeout=max(deadline - loop.time(), 0.1))
    spans = approval_spans()
    assert len({span.trace_id for _, span in spans}) == 1
    assert wanted <= {(service, span.name) for service, span in spans}
    servers = [span for _, span in spans if span.kind == span.SPAN_KIND_SERVER]
    for span in servers:
        request_ids = {
            a.value.string_value for a in span.attributes if a.key == "paynow.request_id"
        }
        assert request_ids == {request_id}, span.name

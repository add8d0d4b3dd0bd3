"""A saturated service over real processes: merchant bounded to one RPC at a time, its slot
held by a payment watch streaming through the edge.

While the watch is open, merchant refuses a direct gRPC call at once with RESOURCE_EXHAUSTED
(OVERLOADED, RetryInfo) and the edge answers the same read with 503 + Retry-After; health
stays SERVING (busy is not broken). Closing the watch frees the slot, and the edge serves
the read again by itself. The slot is held by a stream, not by a race between requests.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from paynow.merchant.v1 import merchant_service_pb2, merchant_service_pb2_grpc
from services.framework import CALLER_SERVICE_KEY, INTERNAL_TOKEN_KEY, USER_ID_KEY
from tests.e2e.paynow_http import (
    PayNow,
    Reply,
    create_payment,
    open_shop,
    running_paynow,
    sign_up,
)

pytestmark = pytest.mark.e2e
_TIMEOUT_S = 30.0


@pytest.fixture
async def paynow(tmp_path: Path) -> AsyncIterator[PayNow]:
    """The stack with merchant allowed one RPC at a time, and an edge deadline long enough
    that the held watch never ends by itself during the test."""
    async with running_paynow(
        tmp_path / "data",
        PAYNOW_MERCHANT_MAX_CONCURRENT_RPCS="1",
        PAYNOW_EDGE_DEADLINE_MS="120000",
    ) as running:
        yield running


class Watch:
    """`GET /v1/payments/{id}:watch` on a raw connection, held open until `close()`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int, payment_id: str, secret: str) -> tuple[Watch, Any]:
        """Start watching; returns once the first NDJSON line (the payment) has arrived, so
        the backend call is certainly running and holding its slot."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        watch = cls(reader, writer)
        writer.write(
            f"GET /v1/payments/{payment_id}:watch HTTP/1.1\r\nhost: paynow\r\n"
            f"authorization: Bearer {secret}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _TIMEOUT_S)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower(), head
        size = int(await asyncio.wait_for(reader.readline(), _TIMEOUT_S), 16)
        chunk = await asyncio.wait_for(reader.readexactly(size + 2), _TIMEOUT_S)
        return watch, json.loads(chunk[:size])

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def _details(status: status_pb2.Status) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


def _json_details(reply: Reply) -> dict[str, Any]:
    return {d["@type"].rsplit(".", 1)[-1]: d for d in reply.json.get("details", [])}


async def _serving(address: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="paynow.merchant.v1.MerchantService"),
            timeout=_TIMEOUT_S,
        )
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return name


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def _overloaded_count(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("grpc_server_handled_total{") and 'grpc_code="RESOURCE_EXHAUSTED"' in (
            line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_saturated_service_refuses_at_once_and_the_edge_sheds_then_recovers(
    paynow: PayNow,
) -> None:
    http = paynow.http
    _, owner_token = await sign_up(http, "busy-owner")
    merchant, secret = await open_shop(http, owner_token)
    created = await create_payment(http, secret, 300)
    read_path = f"/v1/merchants/{merchant['id']}"
    assert (await http.call("GET", read_path, token=owner_token)).status == 200

    merchant_address = paynow.stack.processes["merchant"].address
    metadata = (
        (INTERNAL_TOKEN_KEY, paynow.stack.env["PAYNOW_INTERNAL_TOKEN"]),
        (CALLER_SERVICE_KEY, "edge"),
        (USER_ID_KEY, merchant["ownerId"]),
    )
    request = merchant_service_pb2.GetMerchantRequest(id=merchant["id"])

    watch, first = await Watch.open(http.port, created["id"], secret)
    assert first["state"] == "PAYMENT_STATE_REQUIRES_APPROVAL"
    try:
        # Directly: refused at once (well inside the deadline), not queued behind the watch.
        async with grpc.aio.insecure_channel(merchant_address) as channel:
            stub = merchant_service_pb2_grpc.MerchantServiceStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetMerchant(request, metadata=metadata, timeout=_TIMEOUT_S)
            assert time.monotonic() - started < _TIMEOUT_S / 2
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(refused.value)
        assert status is not None
        details = _details(status)
        assert details["ErrorInfo"].reason == "OVERLOADED"
        assert details["RetryInfo"].retry_delay.ToNanoseconds() > 0

        # Through the edge: the same read is shed with 503 and Retry-After, not 429 or 500.
        shed = await http.call("GET", read_path, token=owner_token)
        assert shed.status == 503, (shed.status, shed.body)
        retry_after = shed.headers["Retry-After"]
        assert retry_after is not None
        assert retry_after.isdigit()
        assert int(retry_after) >= 1
        assert shed.json["code"] == 8  # RESOURCE_EXHAUSTED, as a google.rpc.Status
        body_details = _json_details(shed)
        assert body_details["ErrorInfo"]["reason"] == "OVERLOADED"
        assert "RetryInfo" in body_details

        # Busy is not broken: health bypasses the bound, so no probe restarts a busy pod.
        assert await _serving(merchant_address) == "SERVING"
        assert (await http.call("GET", "/healthz")).status == 200
    finally:
        await watch.close()

    # The edge cancels the backend call of a client that went away, which frees the slot;
    # nobody restarts anything. Poll, bounded: the cancellation reaches merchant
    # asynchronously.
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        again = await http.call("GET", read_path, token=owner_token)
        if again.status != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert again.status == 200, (again.status, again.body)
    assert again.json["id"] == merchant["id"]

    metrics = await asyncio.to_thread(_scrape, paynow.stack.metrics_ports["merchant"])
    assert _overloaded_count(metrics) >= 2  # the direct refusal and the edge's

"""The chain bounds concurrency and writes one access-log line per call."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import structlog

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc
from services.framework.testing import caller_metadata, make_settings, serve_in_process
from tests.framework.fakes import ACCOUNT_ID, USER_ID, FakeAccountServicer, make_app
from tests.framework.status import unpack

GET = account_service_pb2.GetAccountRequest(id=ACCOUNT_ID)
DEPOSIT = account_service_pb2.DepositRequest(
    id=ACCOUNT_ID, amount_minor=100, currency_code="EUR", idempotency_key="k"
)


async def test_calls_beyond_the_concurrency_bound_are_refused_at_once() -> None:
    """Past max_concurrent_rpcs, a call gets RESOURCE_EXHAUSTED/OVERLOADED with RetryInfo."""
    settings = make_settings("account", max_concurrent_rpcs=1)
    servicer = FakeAccountServicer()
    async with serve_in_process(make_app(settings, servicer)) as server:
        stub = server.stub(
            account_service_pb2_grpc.AccountServiceStub, caller_metadata(settings, user_id=USER_ID)
        )
        holding = asyncio.ensure_future(stub.Deposit(DEPOSIT))
        await servicer.started.wait()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetAccount(GET)
        servicer.release.set()
        await holding
    code, info, details = unpack(caught.value)
    assert (code, info.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    assert [d.DESCRIPTOR.name for d in details] == ["RetryInfo"]


async def test_each_call_writes_one_rpc_finished_line(user_stub) -> None:
    """A call logs one rpc_finished line with service, method, code, duration and request id."""
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        await user_stub.GetAccount(GET, metadata=(("x-request-id", "req-log-1"),))
    (line,) = [entry for entry in logs if entry["event"] == "rpc_finished"]
    assert line["service"] == "paynow.account.v1.AccountService"
    assert (line["method"], line["code"], line["request_id"]) == ("GetAccount", "OK", "req-log-1")
    assert line["duration_ms"] >= 0
    assert line["peer"].startswith("ipv4:127.0.0.1:")


async def test_failed_calls_log_their_code_and_reason(user_stub) -> None:
    """A refused call's rpc_finished line carries its code and ErrorInfo reason."""
    with structlog.testing.capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError):
        await user_stub.GetAccount(account_service_pb2.GetAccountRequest(id="x"))
    (line,) = [entry for entry in logs if entry["event"] == "rpc_finished"]
    assert (line["code"], line["reason"]) == ("INVALID_ARGUMENT", "INVALID_REQUEST")


async def test_a_missing_request_id_is_created(user_stub) -> None:
    """Without x-request-id the server creates one and sends it back."""
    call = user_stub.GetAccount(GET)
    metadata = await call.initial_metadata()
    account = await call
    assert metadata["x-request-id"] == account.display_name
    assert len(account.display_name) == 32

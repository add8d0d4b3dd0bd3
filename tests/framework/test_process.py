"""A real service process: graceful SIGTERM with a call in flight, and its JSON log lines."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from pathlib import Path

import grpc
import pytest

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc
from services.framework import Secret
from services.framework.testing import caller_metadata, make_settings, wait_until_serving
from tests.framework.fakes import ACCOUNT_ID, USER_ID
from tests.framework.slow_service import SECRET_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


async def _port_from_log(stream: asyncio.StreamReader, lines: list[str]) -> int:
    while line := (await stream.readline()).decode():
        lines.append(line)
        event = json.loads(line)
        if event["event"] == "service_started":
            return int(event["port"])
    raise AssertionError("the process exited before starting:\n" + "".join(lines))


@pytest.fixture(scope="module")
async def run() -> dict[str, object]:
    """Start the process, put a Deposit in flight, SIGTERM it, and collect what happened."""
    token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "PAYNOW_INTERNAL_TOKEN": token,
        "PAYNOW_FAKE_PORT": "0",
        "PAYNOW_FAKE_DATABASE_URL": "sqlite+aiosqlite:///:memory:",
        "PAYNOW_FAKE_LOG_FORMAT": "auto",  # stdout is a pipe, so auto must mean JSON
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.framework.slow_service",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        port = await asyncio.wait_for(_port_from_log(process.stdout, lines), 30)
        await wait_until_serving(f"127.0.0.1:{port}")
        metadata = caller_metadata(make_settings(internal_token=Secret(token)), user_id=USER_ID)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            deposit = asyncio.ensure_future(
                stub.Deposit(
                    account_service_pb2.DepositRequest(
                        id=ACCOUNT_ID, amount_minor=1, currency_code="EUR", idempotency_key="k"
                    ),
                    metadata=metadata,
                )
            )
            await stub.ListAccounts(account_service_pb2.ListAccountsRequest(), metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.CloseAccount(
                    account_service_pb2.CloseAccountRequest(id=ACCOUNT_ID), metadata=metadata
                )
            process.send_signal(signal.SIGTERM)
            deposit_ok = (await deposit) is not None
        rest = await asyncio.wait_for(process.stdout.read(), 30)
        lines.extend(rest.decode().splitlines(keepends=True))
        returncode = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return {"lines": lines, "returncode": returncode, "deposit_ok": deposit_ok, "token": token}


async def test_in_flight_call_completes_after_sigterm(run) -> None:
    """A call in flight when SIGTERM arrives still gets its answer."""
    assert run["deposit_ok"]


async def test_process_exits_zero_after_sigterm(run) -> None:
    """After SIGTERM the process drains and exits with status 0."""
    assert run["returncode"] == 0


async def test_every_log_line_is_json(run) -> None:
    """With stdout not a terminal, every log line is one JSON object."""
    events = [json.loads(line) for line in run["lines"]]
    assert {"service_started", "rpc_finished", "shutdown_requested", "service_stopped"} <= {
        e["event"] for e in events
    }


async def test_no_secret_reaches_the_log(run) -> None:
    """Passwords, tokens and the internal credential never appear in log output."""
    output = "".join(run["lines"])
    assert "careless_line" in output
    assert "rpc_crashed" in output
    assert SECRET_PASSWORD not in output
    assert run["token"] not in output
    assert "[REDACTED]" in output

"""`scripts/call.py` (`make call`) against a real account process: reflection lists the
methods, and calls go with the run's internal credential and the identity asked for."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.framework._stack import Stack, free_ports, start_stack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def account(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Account alone, on a free port, with a generated token written to its data directory."""
    environ = dict(os.environ)
    environ.pop("PAYNOW_INTERNAL_TOKEN", None)
    data_dir = tmp_path_factory.mktemp("call") / "data"
    ports = free_ports(["account"])
    async with start_stack(data_dir, services=["account"], ports=ports, env=environ) as stack:
        yield stack


async def _call(stack: Stack, *args: str) -> tuple[int, str]:
    """Run scripts/call.py as `make call` does, with only the data directory and port known."""
    env = {k: v for k, v in os.environ.items() if k != "PAYNOW_INTERNAL_TOKEN"}
    env["PAYNOW_DATA_DIR"] = stack.env["PAYNOW_DATA_DIR"]
    env["PAYNOW_ACCOUNT_PORT"] = str(stack.ports["account"])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "scripts/call.py",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def _create_account(stack: Stack) -> dict[str, Any]:
    email = f"cli-{secrets.token_hex(4)}@example.com"
    request = {
        "kind": "ACCOUNT_KIND_PERSONAL",
        "email": email,
        "displayName": "Cli",
        "currencyCode": "EUR",
        "idempotencyKey": secrets.token_hex(8),
    }
    code, output = await _call(stack, "account", "CreateAccount", json.dumps(request))
    assert code == 0, output
    created: dict[str, Any] = json.loads(output)
    return created


async def test_listing_shows_the_methods_of_the_service(account: Stack) -> None:
    """With no method, the script lists what reflection reports, GetAccount among them."""
    code, output = await _call(account, "account")
    assert code == 0, output
    assert "paynow.account.v1.AccountService/GetAccount" in output.split()


async def test_an_internal_method_is_called_with_the_run_s_credential(account: Stack) -> None:
    """CreateAccount (internal only) succeeds with the token the stack wrote to disk."""
    created = await _create_account(account)
    assert created["id"].startswith("acc_")


async def test_a_user_method_is_called_as_the_given_user(account: Stack) -> None:
    """GetAccount with --user reads back the account that user owns."""
    created = await _create_account(account)
    request = json.dumps({"id": created["id"]})
    code, output = await _call(account, "account", "GetAccount", request, "--user", created["id"])
    assert code == 0, output
    assert json.loads(output)["email"] == created["email"]


async def test_an_unknown_method_is_refused_with_the_served_ones(account: Stack) -> None:
    """A method the service does not serve exits 2 and lists the ones it does."""
    code, output = await _call(account, "account", "Nope")
    assert code == 2
    assert "AccountService/GetAccount" in output

"""`make demo` (scripts/demo.py) against the real stack: the whole journey, printed."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.framework._stack import free_ports
from tests.e2e.paynow_http import PayNow, running_paynow

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def paynow(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PayNow]:
    """One stack for the module, started as `make run` starts it."""
    async with running_paynow(tmp_path_factory.mktemp("demo") / "data") as running:
        yield running


async def _demo(edge: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "scripts/demo.py",
        "--edge",
        edge,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
async def demo(paynow: PayNow) -> tuple[int, str, str]:
    """The demo's exit code, output and errors, run once against the stack."""
    return await _demo(f"http://127.0.0.1:{paynow.http.port}")


async def test_the_demo_runs_the_journey_to_the_end(demo: tuple[int, str, str]) -> None:
    """Against a running stack the demo exits 0 and says the journey succeeded."""
    code, out, err = demo
    assert code == 0, out + err
    assert out.rstrip().endswith("The whole journey succeeded.")


async def test_the_demo_prints_every_step_of_the_journey(demo: tuple[int, str, str]) -> None:
    """Each request of the journey appears, in order, with its answer."""
    _, out, _ = demo
    requests = [
        "→ POST /v1/auth:register",
        "→ POST /v1/auth:login",
        ":deposit",
        "→ POST /v1/merchants",
        "/apiKeys",
        "→ POST /v1/payments",
        ":approve",
        ":refund",
        "PAYMENT_STATE_PARTIALLY_REFUNDED",
        "PAYMENT_STATE_REFUNDED",
        "→ GET /v1/accounts/",
    ]
    positions = [out.find(request) for request in requests]
    assert -1 not in positions, out
    assert positions == sorted(positions), out


async def test_the_demo_shows_no_token_or_key_in_full(demo: tuple[int, str, str]) -> None:
    """Access tokens and API key secrets are shortened wherever they appear."""
    _, out, _ = demo
    assert "Authorization: Bearer eyJhbGciOi…" in out
    shown = re.findall(r'"(?:accessToken|refreshToken|secret)": "([^"]*)"', out)
    assert len(shown) >= 4, out  # two logins' pairs of tokens, and the API key
    assert [value for value in shown if not value.endswith("…") or len(value) > 11] == []
    assert re.findall(r"eyJ[\w-]{11,}", out) == []


async def test_the_demo_without_an_edge_says_to_start_the_stack() -> None:
    """With nothing listening it exits 1 and points at `make run`."""
    port = free_ports(["nothing"])["nothing"]
    code, _, err = await _demo(f"http://127.0.0.1:{port}")
    assert code == 1
    assert "start it with `make run`" in err

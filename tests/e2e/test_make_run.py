"""`make run` end to end: every service SERVING, the edge healthy and announced, a killed
service restarted, then Ctrl-C stops them all and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.framework._probes import http_ok
from services.framework._stack import free_ports, start_stack
from tests.conftest import _create_database, _drop_database

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["account", "auth", "merchant"]
EVERYTHING = [*SERVICES, "edge"]
pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (read from /proc; psutil is not installed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _read_until_all_serving(stream: asyncio.StreamReader, output: list[str]) -> None:
    while line := (await stream.readline()).decode():
        output.append(line)
        if "Ctrl-C stops them all" in line:  # the summary's last line
            return
    raise AssertionError("the stack exited before every service was SERVING")


async def _read_until(stream: asyncio.StreamReader, output: list[str], pattern: str) -> str:
    """Read lines until one matches `pattern`; return that line."""
    while line := (await stream.readline()).decode():
        output.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"the stack exited before printing {pattern!r}")


@contextlib.asynccontextmanager
async def _make_run(
    data_dir: Path, ports: dict[str, int]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m services.framework.stack` as `make run` starts it, on `ports`; killed at the end
    if the test left it running."""
    metrics = free_ports(ports)  # not port + 1000, which nothing reserved
    while set(metrics.values()) & set(ports.values()):  # two draws may meet
        metrics = free_ports(ports)
    env = {
        **os.environ,
        "PAYNOW_DATA_DIR": str(data_dir),
        **{f"PAYNOW_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"PAYNOW_{name.upper()}_METRICS_PORT": str(port) for name, port in metrics.items()},
    }
    env.pop("PAYNOW_INTERNAL_TOKEN", None)  # the stack must make its own
    stack = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.framework.stack",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        process_group=0,  # like a terminal's foreground job, which Ctrl-C signals as a group
    )
    try:
        yield stack
    finally:
        if stack.returncode is None:
            os.killpg(stack.pid, signal.SIGKILL)
            await stack.wait()


def _summary_pids(output: list[str]) -> dict[str, int]:
    summary = "".join(line for line in output if line.startswith("stack "))
    found = re.findall(r"^stack +\|   (\w+) .* pid (\d+)$", summary, re.M)
    return {name: int(pid) for name, pid in found}


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(reply.status)


async def test_ctrl_c_stops_every_service_and_exits_zero(tmp_path: Path) -> None:
    """Started as `make run` starts it, the stack serves all four; SIGINT leaves nothing."""
    ports = free_ports(EVERYTHING)  # not the registry ports: a developer's stack may be running
    env = {
        **os.environ,
        "PAYNOW_DATA_DIR": str(tmp_path / "data"),
        **{f"PAYNOW_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    env.pop("PAYNOW_INTERNAL_TOKEN", None)  # the stack must make its own
    stack = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.framework.stack",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        process_group=0,  # like a terminal's foreground job, which Ctrl-C signals as a group
    )
    assert stack.stdout is not None
    output: list[str] = []
    try:
        try:
            await asyncio.wait_for(_read_until_all_serving(stack.stdout, output), 90)
        except (TimeoutError, AssertionError):
            print("".join(output))
            raise
        summary = "".join(line for line in output if line.startswith("stack "))
        pids = [int(pid) for pid in re.findall(r"^stack +\|   \w+ .* pid (\d+)$", summary, re.M)]
        statuses = [await _health(ports[name]) for name in SERVICES]
        edge_healthy = await http_ok("127.0.0.1", ports["edge"], "/healthz", 5)
        os.killpg(stack.pid, signal.SIGINT)
        rest, _ = await asyncio.wait_for(stack.communicate(), 60)
        output.append(rest.decode())
    finally:
        if stack.returncode is None:
            stack.kill()
            await stack.wait()
    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * len(SERVICES), "".join(output)
    assert edge_healthy, "".join(output)
    edge_url = f"http://127.0.0.1:{ports['edge']}"
    for url in (edge_url, f"{edge_url}/docs", f"{edge_url}/openapi.json"):
        assert url in summary, summary
    assert len(pids) == len(EVERYTHING), "".join(output)
    assert stack.returncode == 0, "".join(output)
    assert [pid for pid in pids if _alive(pid)] == []
    assert sorted(p.name for p in (tmp_path / "data").glob("*.db")) == [
        f"{name}.db" for name in SERVICES
    ]


def test_make_run_runs_the_stack_module() -> None:
    """The documented entry point and the tested one are the same command."""
    dry_run = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert "-m services.framework.stack" in dry_run.stdout


async def test_a_killed_service_is_restarted_and_serves_again(tmp_path: Path) -> None:
    """SIGKILL on account is announced, account is SERVING again, and SIGINT leaves nothing."""
    ports = free_ports(EVERYTHING)
    output: list[str] = []
    async with _make_run(tmp_path / "data", ports) as stack:
        assert stack.stdout is not None
        try:
            await asyncio.wait_for(_read_until_all_serving(stack.stdout, output), 90)
            pids = _summary_pids(output)
            os.kill(pids["account"], signal.SIGKILL)
            announced = await asyncio.wait_for(
                _read_until(stack.stdout, output, r"account exited with code -9; restarting in"),
                30,
            )
            serving = await asyncio.wait_for(
                _read_until(stack.stdout, output, r"account is SERVING on .* \(pid (\d+)\)"), 60
            )
        except (TimeoutError, AssertionError):
            print("".join(output))
            raise
        new_pid = int(re.findall(r"\(pid (\d+)\)", serving)[0])
        status = await _health(ports["account"])
        os.killpg(stack.pid, signal.SIGINT)
        rest, _ = await asyncio.wait_for(stack.communicate(), 60)
        output.append(rest.decode())
    assert "restarting in 0.5 s" in announced
    assert new_pid != pids["account"]
    assert status == health_pb2.HealthCheckResponse.SERVING, "".join(output)
    assert stack.returncode == 0, "".join(output)
    assert [pid for pid in [*pids.values(), new_pid] if _alive(pid)] == []


@pytest.fixture
async def postgres_databases() -> AsyncIterator[dict[str, str]]:
    """A database per service, as docs/guides/run-against-postgresql.md makes: their URLs."""
    suffix = secrets.token_hex(4)
    names = {service: f"paynow_{service}_{suffix}" for service in SERVICES}
    created: list[str] = []
    try:
        for name in names.values():
            await _create_database(name)  # skips without PostgreSQL, fails under CI=true
            created.append(name)
        yield {s: f"postgresql+asyncpg://postgres@127.0.0.1:5432/{n}" for s, n in names.items()}
    finally:
        for name in created:
            await _drop_database(name)


async def test_the_stack_serves_on_a_postgresql_database_per_service(
    tmp_path: Path, postgres_databases: dict[str, str]
) -> None:
    """With PAYNOW_<S>_DATABASE_URL set as the guide says, every service reaches SERVING."""
    env = {**os.environ}
    env.pop("PAYNOW_INTERNAL_TOKEN", None)
    for service, url in postgres_databases.items():
        env[f"PAYNOW_{service.upper()}_DATABASE_URL"] = url
    env["PAYNOW_AUTH_SIGNING_KEY_DIR"] = str(tmp_path / "data" / "signing-keys")
    ports = free_ports(EVERYTHING)
    async with start_stack(tmp_path / "data", ports=ports, env=env) as stack:
        statuses = [await _health(stack.ports[name]) for name in SERVICES]
    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * len(SERVICES)
    assert list((tmp_path / "data").glob("*.db")) == []

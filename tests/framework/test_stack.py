"""The stack supervisor: start order, health waits, failures with logs, and a clean stop.

Most tests run small stand-in services (written to tmp_path) so each behaviour is provoked
for real, in real processes; one starts the real services as `make run` does.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.framework._probes import http_ok
from services.framework._registry import Registry, load_registry
from services.framework._stack import Stack, StackError, free_ports, start_stack

# Serves grpc.health.v1 SERVING on its PAYNOW_<NAME>_PORT; the `ignore_sigterm` kind
# survives SIGTERM, so only SIGKILL can stop it. Each stand-in is the module svc_<name>.
_HEALTHY = """
import asyncio, os, signal
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

NAME = __spec__.name.removeprefix("svc_")

async def main():
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port("127.0.0.1:" + os.environ[f"PAYNOW_{NAME.upper()}_PORT"])
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(NAME, "serving", flush=True)
    await asyncio.Event().wait()

if KIND == "ignore_sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
asyncio.run(main())
"""

# Answers every HTTP request with STATUS (200 or 503) on its PAYNOW_<NAME>_PORT.
_HTTP = """
import asyncio, os

NAME = __spec__.name.removeprefix("svc_")

async def answer(reader, writer):
    await reader.readuntil(b"\\r\\n\\r\\n")
    writer.write(b"HTTP/1.1 %d X\\r\\ncontent-length: 0\\r\\n\\r\\n" % STATUS)
    await writer.drain()
    writer.close()

async def main():
    port = int(os.environ[f"PAYNOW_{NAME.upper()}_PORT"])
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    print(NAME, "listening", flush=True)
    await server.serve_forever()

STATUS = 200 if KIND == "http_ok" else 503
asyncio.run(main())
"""

_MODULES = {
    "http_ok": _HTTP,
    "http_unhealthy": _HTTP,
    "healthy": _HEALTHY,
    "ignore_sigterm": _HEALTHY,
    "crashing": "print('cannot open the database: /nowhere')\nraise SystemExit(3)\n",
    "silent": "import time\nprint('starting slowly')\ntime.sleep(600)\n",
}


def _registry(tmp_path: Path, services: Mapping[str, tuple[str, list[str]]]) -> Registry:
    """A registry of stand-ins: name -> (kind of stand-in, calls)."""
    for name, (kind, _) in services.items():
        source = f"KIND = {kind!r}\n" + textwrap.dedent(_MODULES[kind])
        (tmp_path / f"svc_{name}.py").write_text(source, encoding="utf-8")
    ports = free_ports(services)
    text = "".join(
        f'[services.{name}]\nport = {ports[name]}\nmodule = "svc_{name}"\ncalls = {calls!r}\n'
        + ('http_health = "/healthz"\n' if kind.startswith("http") else "")
        for name, (kind, calls) in services.items()
    )
    (tmp_path / "registry.toml").write_text(text.replace("'", '"'), encoding="utf-8")
    return load_registry(tmp_path / "registry.toml")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (read from /proc; psutil is not installed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _status(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(reply.status)


async def test_the_real_services_all_report_serving(tmp_path: Path) -> None:
    """account, auth and merchant answer SERVING, and the edge, started last, /healthz 200."""
    ports = free_ports(load_registry().services)
    async with start_stack(tmp_path / "data", ports=ports) as stack:
        grpc_ones = {n: p for n, p in stack.processes.items() if not p.is_http}
        statuses = {name: await _status(p.address) for name, p in grpc_ones.items()}
        edge_ok = await http_ok("127.0.0.1", ports["edge"], "/healthz", 5)
        order = list(stack.processes)
    assert statuses == dict.fromkeys(["account", "auth", "merchant"], 1)
    assert (edge_ok, order[-1]) == (True, "edge")
    assert {p.name for p in (tmp_path / "data").glob("*.db")} == {
        "account.db",
        "auth.db",
        "merchant.db",
    }


def test_callers_are_given_the_address_of_the_port_their_callee_really_got() -> None:
    """Moving account to another port also moves auth's and merchant's PAYNOW_*_ACCOUNT_ADDR."""
    stack = Stack(env={}, ports={"account": 6001})
    assert stack.env["PAYNOW_ACCOUNT_PORT"] == "6001"
    assert stack.env["PAYNOW_AUTH_ACCOUNT_ADDR"] == "127.0.0.1:6001"
    assert stack.env["PAYNOW_MERCHANT_ACCOUNT_ADDR"] == "127.0.0.1:6001"
    assert stack.ports["auth"] == load_registry().port("auth")


def test_an_internal_token_is_generated_unless_one_is_set() -> None:
    """A fresh unguessable token by default; an operator's own token is kept as is."""
    generated = Stack(env={}).env["PAYNOW_INTERNAL_TOKEN"]
    assert len(generated) >= 40
    assert generated != Stack(env={}).env["PAYNOW_INTERNAL_TOKEN"]
    assert Stack(env={"PAYNOW_INTERNAL_TOKEN": "mine"}).env["PAYNOW_INTERNAL_TOKEN"] == "mine"


def test_the_data_directory_defaults_to_dot_data() -> None:
    """Without PAYNOW_DATA_DIR every service keeps its SQLite file under ./data."""
    assert Stack(env={}).env["PAYNOW_DATA_DIR"] == "./data"


async def test_a_dependent_starts_only_after_its_callee_serves(tmp_path: Path) -> None:
    """The callee's SERVING line comes before the caller's first output line."""
    registry = _registry(tmp_path, {"web": ("healthy", ["account"]), "account": ("healthy", [])})
    lines: list[str] = []
    async with start_stack(registry=registry, env=_env(tmp_path), echo=lines.append):
        pass
    account_serving = next(i for i, line in enumerate(lines) if "account is SERVING" in line)
    web_first = next(i for i, line in enumerate(lines) if line.startswith("web "))
    assert account_serving < web_first


async def test_each_output_line_is_prefixed_with_the_aligned_service_name(tmp_path: Path) -> None:
    """Names are padded to the longest one, so the lines of all services line up."""
    registry = _registry(tmp_path, {"a": ("healthy", []), "longname": ("healthy", ["a"])})
    lines: list[str] = []
    async with start_stack(registry=registry, env=_env(tmp_path), echo=lines.append):
        pass
    assert "a        | a serving" in lines
    assert "longname | longname serving" in lines


async def test_a_service_that_dies_during_start_up_fails_with_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error names the service and exit code and carries what the process printed."""
    registry = _registry(tmp_path, {"db": ("crashing", [])})
    with pytest.raises(StackError, match="db exited with code 3") as caught:
        async with start_stack(registry=registry, env=_env(tmp_path)):
            pass
    assert "cannot open the database: /nowhere" in str(caught.value)
    assert "cannot open the database: /nowhere" in capsys.readouterr().err


async def test_a_service_that_never_serves_times_out_with_its_log(tmp_path: Path) -> None:
    """A process that runs but never reports SERVING fails the start after the timeout."""
    registry = _registry(tmp_path, {"slow": ("silent", [])})
    stack = Stack(registry=registry, env=_env(tmp_path), startup_timeout_s=1.0)
    try:
        with pytest.raises(StackError, match=r"did not report SERVING in time(.|\n)*slowly"):
            await stack.start()
    finally:
        await stack.stop()
    assert not _alive(stack.processes["slow"].pid)


async def test_dependents_are_not_started_when_a_callee_fails(tmp_path: Path) -> None:
    """A caller of a service that could not start is never launched."""
    registry = _registry(tmp_path, {"db": ("crashing", []), "web": ("healthy", ["db"])})
    stack = Stack(registry=registry, env=_env(tmp_path))
    try:
        with pytest.raises(StackError):
            await stack.start()
    finally:
        await stack.stop()
    assert list(stack.processes) == ["db"]


async def test_an_http_service_is_ready_when_its_health_path_answers_200(tmp_path: Path) -> None:
    """An `http_health` service is waited on over HTTP, and its callers start after it."""
    registry = _registry(tmp_path, {"web": ("http_ok", []), "cli": ("healthy", ["web"])})
    lines: list[str] = []
    async with start_stack(registry=registry, env=_env(tmp_path), echo=lines.append) as stack:
        assert stack.processes["web"].url.startswith("http://127.0.0.1:")
    web_ready = next(i for i, line in enumerate(lines) if "web is SERVING on http://" in line)
    cli_first = next(i for i, line in enumerate(lines) if line.startswith("cli "))
    assert web_ready < cli_first


async def test_an_http_service_answering_503_never_becomes_ready(tmp_path: Path) -> None:
    """A health path that does not say 200 fails the start after the timeout, with the log."""
    registry = _registry(tmp_path, {"web": ("http_unhealthy", [])})
    stack = Stack(registry=registry, env=_env(tmp_path), startup_timeout_s=1.0)
    try:
        with pytest.raises(StackError, match=r"did not report SERVING in time(.|\n)*listening"):
            await stack.start()
    finally:
        await stack.stop()


async def test_stopping_leaves_no_process_behind(tmp_path: Path) -> None:
    """After the context exits, no recorded child pid is alive."""
    registry = _registry(tmp_path, {"a": ("healthy", []), "b": ("healthy", ["a"])})
    async with start_stack(registry=registry, env=_env(tmp_path)) as stack:
        pids = [p.pid for p in stack.processes.values()]
        assert all(_alive(pid) for pid in pids)
    assert not any(_alive(pid) for pid in pids)


async def test_a_service_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    """SIGTERM first; a process still running when the grace period ends gets SIGKILL."""
    registry = _registry(tmp_path, {"stubborn": ("ignore_sigterm", [])})
    lines: list[str] = []
    async with start_stack(
        registry=registry, env=_env(tmp_path), echo=lines.append, grace_s=0.5
    ) as stack:
        process = stack.processes["stubborn"].process
    assert process.returncode == -9
    assert any("still running after 0.5s; killing it" in line for line in lines)

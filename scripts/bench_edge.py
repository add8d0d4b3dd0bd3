"""Benchmark the edge against the same call made directly over gRPC.

    python scripts/bench_edge.py [--seconds 10] [--rounds 3] [--connections 16] [--write FILE]

Starts the test library backend and the edge on 127.0.0.1, both pinned to core 0, and drives
them from core 1: wrk for a public `GET /v1/shelves/s1` and for a USER `GET /v1/me/shelf`
with a real EdDSA JWT (verified against a JWKS file, as against auth's published keys), then
a Python grpc.aio client calling GetShelf straight to the backend. CPU time per request of
each process comes from /proc/<pid>/stat (utime + stime) read before and after each run.
Needs wrk and taskset (`apt-get install -y wrk`); says so and exits 2 without them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# The repository root is on the path through the project's editable install.
from scripts.bench_report import write_section
from services.edge.rate_limits import write_unreachable_budgets
from tests.edge.library import (
    SERVICE,
    compile_library,
    free_port,
    pythonpath,
    running,
    wait_backend_serving,
)

ROOT = Path(__file__).resolve().parent.parent

_TICKS = os.sysconf("SC_CLK_TCK")
_PUBLIC_PATH = "/v1/shelves/s1"
_USER_PATH = "/v1/me/shelf"
_GET_SHELF = b"\x0a\x02s1"  # GetShelfRequest(shelf_id="s1"), encoded by hand: no imports


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(
    url: str, seconds: int, connections: int, header: str | None = None
) -> tuple[int, float, float, float]:
    """(requests, requests/s, p50 ms, p99 ms) of wrk on core 1."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if header is not None:
        command += ["-H", header]
    out = subprocess.run([*command, "--latency", url], capture_output=True, text=True, check=True)
    text = out.stdout
    requests = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        raise SystemExit(f"wrk saw {errors[1]} failed responses:\n{text}")
    return requests, rate, p50, p99


async def _grpc_load(port: int, seconds: float, concurrency: int) -> list[float]:
    import grpc  # noqa: PLC0415 - only the client subprocess needs it

    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/{SERVICE}/GetShelf")
        stop = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                await call(_GET_SHELF, timeout=10)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def grpc_client_main(port: int, seconds: float, concurrency: int) -> None:
    """The direct client (run pinned to core 1): prints requests, p50 and p99 as JSON."""
    asyncio.run(_grpc_load(port, 1.0, concurrency))  # warm-up
    started = time.perf_counter()
    latencies = sorted(asyncio.run(_grpc_load(port, seconds, concurrency)))
    elapsed = time.perf_counter() - started
    n = len(latencies)
    print(
        json.dumps(
            {
                "requests": n,
                "rate": n / elapsed,
                "p50": latencies[n // 2] * 1000,
                "p99": latencies[int(n * 0.99)] * 1000,
            }
        )
    )


def run_grpc_client(port: int, seconds: int, connections: int) -> tuple[int, float, float, float]:
    command = ["taskset", "-c", "1", sys.executable, __file__, "--grpc-client", str(port)]
    args = [*command, "--seconds", str(seconds), "--connections", str(connections)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["requests"], result["rate"], result["p50"], result["p99"]


def _wait_http_ok(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the edge never answered /healthz")


def signed_in(directory: Path) -> tuple[Path, str]:
    """A JWKS file holding a fresh Ed25519 key, and an access token it signed, with the
    claims auth puts in its tokens (valid for an hour)."""
    import jwt  # noqa: PLC0415 - only the parent process needs it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    key = Ed25519PrivateKey.generate()
    public = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "bench", "alg": "EdDSA"}]}))
    now = int(time.time())
    claims: dict[str, object] = {"iss": "paynow-auth", "aud": "paynow", "sub": "acc_bench"}
    claims |= {"jti": "bench", "iat": now, "nbf": now, "exp": now + 3600}
    return jwks, jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "bench"})


Row = tuple[str, float, float, float, float, float]


def measure(args: argparse.Namespace, compiled: Path, descriptor_set: Path) -> list[list[Row]]:
    """Per round, the three runs, each a row: name, req/s, p50, p99, edge and backend CPU
    µs/request."""
    jwks, token = signed_in(compiled)
    backend_port, edge_port = free_port(), free_port()
    # The limiter runs on every request (its cost is part of the edge's), with budgets that
    # wrk cannot spend: a 429 would end the run (run_wrk refuses non-2xx answers).
    limits = write_unreachable_budgets(compiled / "rate-limits.toml")
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath(compiled),
        "PAYNOW_EDGE_LOG_FORMAT": "json",
        "PAYNOW_EDGE_RATE_LIMITS_FILE": str(limits),
    }
    pin = ["taskset", "-c", "0", sys.executable, "-m"]
    backend_cmd = [*pin, "tests.edge.library_backend", "--port", str(backend_port)]
    edge_cmd = [
        *pin, "services.edge", "--descriptor-set", str(descriptor_set),
        "--backend", f"{SERVICE}=127.0.0.1:{backend_port}", "--jwks-file", str(jwks),
        "--default-access", "public", "--port", str(edge_port),
    ]  # fmt: skip
    edge_url = f"http://127.0.0.1:{edge_port}"
    bearer = f"Authorization: Bearer {token}"
    rows: list[list[Row]] = []
    with running(backend_cmd, env) as backend, running(edge_cmd, env) as edge:
        wait_backend_serving(backend_port)
        _wait_http_ok(edge_port)
        pids = edge.popen.pid, backend.popen.pid
        runs = [
            ("public GET via edge (wrk)", edge_url + _PUBLIC_PATH, None),
            ("USER GET via edge, JWT (wrk)", edge_url + _USER_PATH, bearer),
        ]
        for _name, url, header in runs:
            run_wrk(url, 2, args.connections, header)  # warm-up (and the JWKS fetch)
        # Rounds interleave the three runs, so a slow spell of a shared machine lands on all
        # of them rather than on one; the report takes medians over rounds.
        for _ in range(args.rounds):
            round_rows: list[Row] = []
            for name, url, header in runs:
                before = cpu_seconds(pids[0]), cpu_seconds(pids[1])
                n, rate, p50, p99 = run_wrk(url, args.seconds, args.connections, header)
                edge_cpu = (cpu_seconds(pids[0]) - before[0]) / n * 1e6
                backend_cpu = (cpu_seconds(pids[1]) - before[1]) / n * 1e6
                round_rows.append((name, rate, p50, p99, edge_cpu, backend_cpu))
            before = cpu_seconds(pids[0]), cpu_seconds(pids[1])
            n, rate, p50, p99 = run_grpc_client(backend_port, args.seconds, args.connections)
            direct_cpu = (cpu_seconds(pids[1]) - before[1]) / n * 1e6
            round_rows.append(("same call, direct gRPC (Python)", rate, p50, p99, 0.0, direct_cpu))
            rows.append(round_rows)
    return rows


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _ratio(rounds: list[list[Row]], top: tuple[int, int], bottom: tuple[int, int]) -> str:
    """Median over rounds of rows[top]/rows[bottom] (row, column), with the range."""
    values = [r[top[0]][top[1]] / r[bottom[0]][bottom[1]] for r in rounds]  # type: ignore[operator]
    if len(values) == 1:
        return f"{values[0]:.2f}x"
    return f"{_median(values):.2f}x ({min(values):.2f} to {max(values):.2f})"


def report(args: argparse.Namespace, rounds: list[list[Row]]) -> str:
    """The table (medians over rounds) and the ratios (median and range), as Markdown."""
    lines = [
        f"{args.rounds} rounds of {args.seconds} s per run, {args.connections} connections; "
        "edge and backend pinned to core 0, load (wrk, or the Python gRPC client) on core 1; "
        "CPU in µs per request (utime + stime from /proc); figures are medians over rounds, "
        "ratios the median of each round's ratio with the range in brackets.",
        "",
        "| run | req/s | p50 ms | p99 ms | edge CPU | backend CPU |",
        "|---|---|---|---|---|---|",
    ]
    for index, (name, *_) in enumerate(rounds[0]):
        rate, p50, p99, edge_us, backend_us = (
            _median([float(r[index][column]) for r in rounds]) for column in range(1, 6)
        )
        edge_text = f"{edge_us:.0f}" if edge_us else "-"
        lines.append(
            f"| {name} | {rate:.0f} | {p50:.2f} | {p99:.2f} | {edge_text} | {backend_us:.0f} |"
        )
    lines += [
        "",
        "| ratio (same rounds) | value | target |",
        "|---|---|---|",
        f"| edge CPU / backend CPU, public GET | {_ratio(rounds, (0, 4), (0, 5))} | ≤ 1.0x |",
        f"| edge CPU / backend CPU, USER GET (JWT) | {_ratio(rounds, (1, 4), (1, 5))} | - |",
        f"| edge CPU, JWT / public | {_ratio(rounds, (1, 4), (0, 4))} | ≤ 1.2x |",
        "| edge CPU public / backend CPU in the direct run | "
        f"{_ratio(rounds, (0, 4), (2, 5))} | - |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--write", type=Path, help="also write the table into this Markdown file")
    parser.add_argument("--grpc-client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.grpc_client:
        grpc_client_main(args.grpc_client, args.seconds, args.connections)
        return 0
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(
            f"bench_edge: {', '.join(missing)} not found, so the edge was NOT measured; "
            "install with `apt-get install -y wrk util-linux`",
            file=sys.stderr,
        )
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("bench_edge: needs 2 cores (edge+backend on one, wrk on the other)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {1})  # this script's own threads stay off the measured core
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as temp:
        compiled = Path(temp)
        rows = measure(args, compiled, compile_library(compiled))
    markdown = report(args, rows)
    print(markdown)
    if args.write is not None:
        write_section(args.write, "edge", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

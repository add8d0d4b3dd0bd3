"""A gRPC client's own CPU per unary call: grpc.aio's against the edge's (grpc_client).

    python scripts/bench_grpc_client.py [--calls 20000] [--rounds 3] [--write FILE]

The test library backend runs pinned to core 0; this process, pinned to core 1, makes
`--calls` GetShelf calls 16 at a time through each client in turn, with metadata as the
edge sends it, and takes its own CPU time (utime + stime) per call: serialising the request,
the call, parsing the reply, reading its metadata. Rounds interleave the two clients, so
their ratio comes from the same conditions. It is the measurement behind the edge having its
own client (docs/edge.md, "Calling backends").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from scripts.bench_report import write_section
from services.edge.grpc_client import Channel
from tests.edge.library import (
    SERVICE,
    compile_library,
    free_port,
    pythonpath,
    running,
    wait_backend_serving,
)

_CONCURRENCY = 16
_METADATA = (
    ("x-request-id", "3f1c2a9be0d4475c8a61b2e9"),
    ("x-paynow-caller-service", "edge"),
    ("x-paynow-internal-token", "bench-token-0123456789"),
    ("x-forwarded-for", "127.0.0.1"),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
)

Caller = Callable[[Any], Awaitable[Any]]


async def _drive(call: Caller, request: Any, calls: int) -> float:
    """CPU µs per call of this process over `calls` calls, 16 in flight."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await call(request)

    await worker(200)  # warm the connection and the caches
    started = time.process_time()
    await asyncio.gather(*(worker(calls // _CONCURRENCY) for _ in range(_CONCURRENCY)))
    return (time.process_time() - started) / (calls // _CONCURRENCY * _CONCURRENCY) * 1e6


def _as_the_edge_calls(method: Any) -> Caller:
    """A call as the gateway makes it: with the edge's metadata, reply then metadata read."""

    async def call(message: Any) -> Any:
        pending = method(message, timeout=10, metadata=_METADATA)
        reply = await pending
        await pending.initial_metadata()
        await pending.trailing_metadata()
        return reply

    return call


def _get_shelf(channel: Any, request: Any, response_class: Any) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/GetShelf",
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_class.FromString,
    )


async def _grpc_aio(port: int, request: Any, response_class: Any, calls: int) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        method = _get_shelf(channel, request, response_class)
        return await _drive(_as_the_edge_calls(method), request, calls)


async def _edge_client(port: int, request: Any, response_class: Any, calls: int) -> float:
    channel = Channel(f"127.0.0.1:{port}")
    try:
        method = _get_shelf(channel, request, response_class)
        return await _drive(_as_the_edge_calls(method), request, calls)
    finally:
        await channel.close()


def measure(calls: int, rounds: int, compiled: Path) -> dict[str, list[float]]:
    sys.path.insert(0, str(compiled))
    library_pb2 = importlib.import_module("testing.library.v1.library_pb2")  # compiled above

    request = library_pb2.GetShelfRequest(shelf_id="s1")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath(compiled)}
    backend = ["taskset", "-c", "0", sys.executable, "-m", "tests.edge.library_backend"]
    results: dict[str, list[float]] = {"grpc.aio": [], "edge client": []}
    with running([*backend, "--port", str(port)], env):
        wait_backend_serving(port)
        for _ in range(rounds):
            for name, run in (("grpc.aio", _grpc_aio), ("edge client", _edge_client)):
                results[name].append(asyncio.run(run(port, request, library_pb2.Shelf, calls)))
    return results


def report(calls: int, results: dict[str, list[float]]) -> str:
    ratios = [e / g for e, g in zip(results["edge client"], results["grpc.aio"], strict=True)]
    lines = [
        f"A client's own CPU per unary call (`scripts/bench_grpc_client.py`): {calls} GetShelf "
        f"calls, {_CONCURRENCY} in flight, to the library backend on the other core; median "
        f"of {len(ratios)} interleaved rounds.",
        "",
        "| client | CPU µs per call |",
        "|---|---|",
    ]
    lines += [f"| {name} | {statistics.median(v):.1f} |" for name, v in results.items()]
    lines += [
        "",
        f"Edge client / grpc.aio, same rounds: **{statistics.median(ratios):.2f}x** "
        f"({min(ratios):.2f} to {max(ratios):.2f}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, help="also write the table into this Markdown file")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as out:
        compile_library(Path(out))
        results = measure(args.calls, args.rounds, Path(out))
    text = report(args.calls, results)
    print(text)
    if args.write:
        write_section(args.write, "grpc-client", text)


if __name__ == "__main__":
    main()

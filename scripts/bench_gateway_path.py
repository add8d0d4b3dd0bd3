"""The edge's own CPU per request, in-process and without gRPC: a low-noise figure.

    python scripts/bench_gateway_path.py [--requests 30000] [--rounds 5] [--write FILE]

Builds the gateway exactly as the edge does (test library descriptors, rate limiter, metrics,
access line in JSON) and replaces each route's backend call with one that has already
finished, so what is measured is routing, request id, trace context, the rate limit,
metadata, the message, the JSON reply, metrics and the log line: what the edge adds on top
of the floor (docs/benchmarks.md). Each variant switches one cost off, so the differences
say what each costs. CPU time of this process over `--requests` requests, best of
`--rounds`; unlike the wrk runs it moves little from run to run, so it shows changes of a
microsecond or two.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from google.protobuf import message_factory

from scripts.bench_report import write_section
from services.edge.app import build_gateway
from services.edge.config import load_edge_settings
from services.edge.gateway import Gateway
from services.edge.rate_limits import write_unreachable_budgets
from services.edge.server import Request
from services.framework import configure_logging
from tests.edge.library import SERVICE, compile_library


class _Finished:
    """A backend call that has already answered `reply`, with no metadata."""

    __slots__ = ("_reply",)

    def __init__(self, reply: Any) -> None:
        self._reply = reply

    def __await__(self) -> Generator[None, None, Any]:
        return self._reply
        yield  # a generator, so `await` accepts it

    async def initial_metadata(self) -> tuple[()]:
        return ()

    async def trailing_metadata(self) -> tuple[()]:
        return ()


class _Connection:
    keep_alive = True
    status = 0

    def respond(self, status: int, headers: list[bytes], body: bytes, content_type: str) -> None:
        self.status = status


def _request(metadata: bool = True) -> Request:
    request = Request()
    request.method, request.path, request.client = "GET", "/v1/shelves/s1", "127.0.0.1"
    request.headers = {b"host": b"127.0.0.1:8080", b"user-agent": b"wrk"}
    if metadata:  # as the server adds to every request
        request.grpc_metadata = [(b"grpc-metadata-x-forwarded-for", b"127.0.0.1")]
    return request


async def _cpu_per_request(gateway: Gateway, requests: list[Request]) -> float:
    connection: Any = _Connection()
    started = time.process_time()
    for request in requests:
        await gateway.handle(request, connection)
    if connection.status != 200:
        raise SystemExit(f"the gateway answered {connection.status}")
    return (time.process_time() - started) / len(requests) * 1e6


async def measure(requests: int, rounds: int, directory: Path) -> dict[str, float]:
    """Best µs per request over `rounds`, for the full path and each variant."""
    descriptor_set = compile_library(directory)
    budgets = write_unreachable_budgets(directory / "rate-limits.toml")
    configure_logging("info", "json", stream=io.StringIO(), force=True)
    try:
        settings = load_edge_settings(
            ["--descriptor-set", str(descriptor_set), "--backend", f"{SERVICE}=127.0.0.1:1",
             "--default-access", "public"],
            {"PAYNOW_EDGE_RATE_LIMITS_FILE": str(budgets)},
        )  # fmt: skip
        gateway, _ = build_gateway(settings, {})
        for route in gateway._router.routes():
            reply = message_factory.GetMessageClass(route.spec.output)()
            if route.spec.path.endswith("/GetShelf"):  # the one measured: as the test backend
                reply.MergeFrom(type(reply)(id="s1", theme="theme of s1", book_count=2**40))
            route.call = lambda *_args, _reply=reply, **_kwargs: _Finished(_reply)
        limiter, log_write = gateway._limiter, gateway._access_log.write
        variants: dict[str, tuple[Callable[[], None], Callable[[], None], bool]] = {
            "full path": (lambda: None, lambda: None, True),
            "without the rate limiter": (
                lambda: setattr(gateway, "_limiter", None),
                lambda: setattr(gateway, "_limiter", limiter),
                True,
            ),
            "without the access line": (
                lambda: setattr(gateway._access_log, "write", lambda *_a, **_k: None),
                lambda: setattr(gateway._access_log, "write", log_write),
                True,
            ),
            "without Grpc-Metadata (x-forwarded-for)": (lambda: None, lambda: None, False),
        }
        await _cpu_per_request(gateway, [_request() for _ in range(requests // 10)])  # warm-up
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, (switch_off, restore, metadata) in variants.items():
                batch = [_request(metadata) for _ in range(requests)]
                switch_off()
                try:
                    cost = await _cpu_per_request(gateway, batch)
                finally:
                    restore()
                best[name] = min(best.get(name, cost), cost)
        await gateway.close()
    finally:
        configure_logging(force=True)  # the defaults again, for whoever runs next
    return best


def report(best: dict[str, float], requests: int, rounds: int) -> str:
    full = best["full path"]
    lines = [
        f"The edge's own work per request, in-process, backend call replaced by a finished "
        f"one (`scripts/bench_gateway_path.py`): CPU µs per request, best of {rounds} rounds "
        f"of {requests} requests.",
        "",
        "| variant | µs per request | its cost |",
        "|---|---|---|",
    ]
    for name, cost in best.items():
        saved = "" if name == "full path" else f"{full - cost:.1f}"
        lines.append(f"| {name} | {cost:.1f} | {saved} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", type=Path, help="Markdown file whose section to rewrite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        best = asyncio.run(measure(args.requests, args.rounds, Path(directory)))
    text = report(best, args.requests, args.rounds)
    print(text)
    if args.write:
        write_section(args.write, "gateway-path", text)


if __name__ == "__main__":
    main()

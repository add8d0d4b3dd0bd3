"""The client benchmark keeps running both clients against the real library backend."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

from scripts.bench_grpc_client import measure, report


def test_the_client_benchmark_measures_both_clients(compiled: tuple[Path, Path]) -> None:
    """A short run completes every call through each client and reports their ratio."""
    # In a thread: measure() uses asyncio.run(), which would leave this thread without the
    # current loop that later tests' synchronous fixtures rely on.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        results = pool.submit(measure, 320, 1, compiled[0]).result()
    assert set(results) == {"grpc.aio", "edge client"}
    assert all(len(v) == 1 and v[0] > 0 for v in results.values())
    assert "Edge client / grpc.aio" in report(320, results)

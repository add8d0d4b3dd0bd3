"""The in-process benchmark of the edge's own work keeps running against the real gateway."""

from __future__ import annotations

from pathlib import Path

from scripts.bench_gateway_path import measure, report


async def test_the_gateway_path_benchmark_measures_every_variant(tmp_path: Path) -> None:
    """A short run serves every variant with 200s and reports a positive cost for each."""
    best = await measure(requests=200, rounds=1, directory=tmp_path)
    assert set(best) >= {"full path", "without the rate limiter", "without the access line"}
    assert all(cost > 0 for cost in best.values())
    assert "| full path |" in report(best, 200, 1)

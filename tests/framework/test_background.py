"""Background jobs run after start-up, survive failures and stop with the service."""

from __future__ import annotations

import asyncio

from services.framework._background import BackgroundJob, BackgroundJobs


async def test_a_job_runs_again_after_a_failure() -> None:
    """A raising run is logged and the job keeps its schedule."""
    runs: list[int] = []
    third = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("dependency down")
        if len(runs) == 3:
            third.set()

    jobs = BackgroundJobs()
    jobs.add(BackgroundJob("flaky", flaky, interval_s=0.001))
    jobs.start()
    await asyncio.wait_for(third.wait(), timeout=5)
    await jobs.stop()
    assert len(runs) >= 3


async def test_stop_cancels_a_running_job() -> None:
    """stop() ends a job even in the middle of a run, and returns."""
    started = asyncio.Event()

    async def endless() -> None:
        started.set()
        await asyncio.Event().wait()

    jobs = BackgroundJobs()
    jobs.add(BackgroundJob("endless", endless, interval_s=60))
    jobs.start()
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(jobs.stop(), timeout=5)

"""Periodic background work that lives and dies with a service (sweeps, recovery).

A job runs once right after the service reports SERVING, then every `interval_s`. A failing
run is logged and retried at the next tick, never fatal: recovery jobs exist precisely for
the moments when a dependency is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

__all__ = ["BackgroundJob", "BackgroundJobs"]

_log = structlog.get_logger("paynow.background")


@dataclass(frozen=True)
class BackgroundJob:
    name: str
    run: Callable[[], Awaitable[object]]
    interval_s: float


class BackgroundJobs:
    """Starts jobs as asyncio tasks and cancels them, waiting for each to end."""

    def __init__(self) -> None:
        self._jobs: list[BackgroundJob] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def jobs(self) -> tuple[BackgroundJob, ...]:
        return tuple(self._jobs)

    def add(self, job: BackgroundJob) -> None:
        self._jobs.append(job)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop(job), name=f"paynow-job-{job.name}")
            for job in self._jobs
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @staticmethod
    async def _loop(job: BackgroundJob) -> None:
        while True:
            try:
                result = await job.run()
                if result:
                    _log.info("background_job_done", job=job.name, result=result)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.warning("background_job_failed", job=job.name, exc_info=True)
            await asyncio.sleep(job.interval_s)

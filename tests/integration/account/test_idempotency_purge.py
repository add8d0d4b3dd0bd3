"""Every service with keyed methods purges its idempotency records on its own."""

from __future__ import annotations

from services.framework._app import IDEMPOTENCY_PURGE_JOB

from .harness import AccountHarness


async def test_the_purge_job_is_wired_and_runs_against_the_services_table(
    account: AccountHarness,
) -> None:
    """account (Deposit takes a key) gets the framework's purge job, and it runs cleanly."""
    jobs = {job.name: job for job in account.server.app.background_jobs}
    assert IDEMPOTENCY_PURGE_JOB in jobs
    assert await jobs[IDEMPOTENCY_PURGE_JOB].run() == 0

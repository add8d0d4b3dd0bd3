"""Idempotency keys on both databases: replay, reuse, in-progress, release, take-over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import MetaData

from paynow.account.v1 import account_service_pb2
from services.framework import IdempotencyKeyReused, RequestInProgress
from services.framework._idempotency import IdempotencyStore, idempotency_table
from services.framework._storage import Database

Request = account_service_pb2.DepositRequest
Response = account_service_pb2.DepositResponse


def deposit(amount: int, key: str = "k-1") -> Request:
    return Request(
        id="acc_" + "0" * 26, amount_minor=amount, currency_code="EUR", idempotency_key=key
    )


@pytest.fixture
async def store(database: Database) -> IdempotencyStore:
    metadata = MetaData()
    idempotency_table(metadata)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return IdempotencyStore(database)


class Handler:
    """Counts its runs and answers with a response naming the run."""

    def __init__(self) -> None:
        self.runs = 0

    async def __call__(self) -> Response:
        self.runs += 1
        response = Response()
        response.transaction.id = f"txn_run{self.runs}"
        return response


async def stalled_call(
    store: IdempotencyStore, key: str
) -> tuple[asyncio.Task[Response], asyncio.Event]:
    """A call that has claimed `key` and waits, holding it, until the event is set."""
    claimed, release = asyncio.Event(), asyncio.Event()

    async def stalled() -> Response:
        claimed.set()
        await release.wait()
        return Response()

    task = asyncio.create_task(store.run("s", key, deposit(5), Response, stalled))
    await claimed.wait()
    return task, release


async def test_same_key_and_request_replays_the_first_response(store: IdempotencyStore) -> None:
    """The handler runs once; the retry gets the stored response."""
    handler = Handler()
    first = await store.run("s", "k-1", deposit(5), Response, handler)
    again = await store.run("s", "k-1", deposit(5), Response, handler)
    assert handler.runs == 1
    assert first == again


async def test_same_key_with_another_request_is_refused(store: IdempotencyStore) -> None:
    """A key reused for different parameters is IDEMPOTENCY_KEY_REUSED."""
    await store.run("s", "k-1", deposit(5), Response, Handler())
    with pytest.raises(IdempotencyKeyReused):
        await store.run("s", "k-1", deposit(6), Response, Handler())


async def test_keys_are_scoped(store: IdempotencyStore) -> None:
    """The same key in another scope (another caller) is independent."""
    handler = Handler()
    await store.run("merchant-a", "k-1", deposit(5), Response, handler)
    await store.run("merchant-b", "k-1", deposit(6), Response, handler)
    assert handler.runs == 2


async def test_concurrent_duplicate_gets_request_in_progress(store: IdempotencyStore) -> None:
    """While the first call runs, a duplicate is ABORTED rather than run twice."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> Response:
        started.set()
        await release.wait()
        return Response()

    first = asyncio.create_task(store.run("s", "k-1", deposit(5), Response, slow))
    await started.wait()
    with pytest.raises(RequestInProgress):
        await store.run("s", "k-1", deposit(5), Response, Handler())
    release.set()
    await first


async def test_failed_call_releases_its_key(store: IdempotencyStore) -> None:
    """An error is not stored: the retry runs the handler again."""

    async def failing() -> Response:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.run("s", "k-1", deposit(5), Response, failing)
    handler = Handler()
    await store.run("s", "k-1", deposit(5), Response, handler)
    assert handler.runs == 1


async def test_expired_lease_is_taken_over(database: Database, store: IdempotencyStore) -> None:
    """A claim whose holder died (lease passed) is taken over by the next retry."""
    now = [datetime(2026, 11, 25, tzinfo=UTC)]
    clocked = IdempotencyStore(database, lease=timedelta(seconds=5), clock=lambda: now[0])
    stuck, _ = await stalled_call(clocked, "k-1")
    now[0] += timedelta(seconds=6)
    handler = Handler()
    await clocked.run("s", "k-1", deposit(5), Response, handler)
    assert handler.runs == 1
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck


async def test_expired_records_are_purged(database: Database, store: IdempotencyStore) -> None:
    """Records older than the retention period are deleted by purge_expired."""
    now = [datetime(2026, 11, 25, tzinfo=UTC)]
    clocked = IdempotencyStore(database, clock=lambda: now[0])
    await clocked.run("s", "k-1", deposit(5), Response, Handler())
    now[0] += timedelta(hours=25)
    assert await clocked.purge_expired() == 1


async def test_a_crashed_calls_key_is_free_once_its_deadline_passed(
    database: Database, store: IdempotencyStore
) -> None:
    """The lease is the call's deadline: a holder that died blocks retries no longer."""
    now = [datetime(2026, 11, 25, tzinfo=UTC)]
    clocked = IdempotencyStore(database, clock=lambda: now[0])
    claimed, never = asyncio.Event(), asyncio.Event()

    async def dies_mid_way() -> Response:
        claimed.set()
        await never.wait()
        return Response()

    stuck = asyncio.create_task(
        clocked.run("s", "k-1", deposit(5), Response, dies_mid_way, lease=timedelta(seconds=5))
    )
    await claimed.wait()
    now[0] += timedelta(seconds=4)
    with pytest.raises(RequestInProgress):
        await clocked.run("s", "k-1", deposit(5), Response, Handler())
    now[0] += timedelta(seconds=2)
    handler = Handler()
    await clocked.run("s", "k-1", deposit(5), Response, handler)
    assert handler.runs == 1
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck


async def test_the_purge_deletes_a_backlog_in_bounded_batches(
    database: Database, store: IdempotencyStore
) -> None:
    """More expired records than one batch all go, a batch per transaction; fresh ones stay."""
    now = [datetime(2026, 11, 25, tzinfo=UTC)]
    clocked = IdempotencyStore(database, clock=lambda: now[0])
    for n in range(5):
        await clocked.run("s", f"old-{n}", deposit(5), Response, Handler())
    now[0] += timedelta(hours=25)
    await clocked.run("s", "fresh", deposit(5), Response, Handler())
    assert await clocked.purge_expired(batch_size=2) == 5
    handler = Handler()
    await clocked.run("s", "fresh", deposit(5), Response, handler)
    assert handler.runs == 0  # the fresh key still replays


async def test_the_purge_keeps_an_old_record_whose_call_holds_its_lease(
    database: Database, store: IdempotencyStore
) -> None:
    """A call still running keeps its key, however old; once its lease lapses it may go."""
    now = [datetime(2026, 11, 25, tzinfo=UTC)]
    clocked = IdempotencyStore(database, lease=timedelta(hours=30), clock=lambda: now[0])
    running, release = await stalled_call(clocked, "k-1")
    now[0] += timedelta(hours=25)
    assert await clocked.purge_expired() == 0
    now[0] += timedelta(hours=6)
    assert await clocked.purge_expired() == 1
    release.set()
    await running

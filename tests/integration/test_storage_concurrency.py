"""Concurrent writers and retries, on the real SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.framework._storage import Database, is_transient

WRITERS = 50


async def _read_counter(session: AsyncSession) -> int:
    row = await session.execute(text("SELECT value FROM counters WHERE name = 'c'"))
    return int(row.scalar_one())


async def _start_counter(db: Database, migrations: Path) -> None:
    await db.migrate(migrations)
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO counters VALUES ('c', 0)"))


async def test_fifty_concurrent_sqlite_writers_all_commit(
    sqlite_url: str, sample_migrations: Path
) -> None:
    """Read-modify-write from 50 tasks at once: none sees "database is locked", none is lost."""
    db = Database(sqlite_url, service="test", max_attempts=1)  # success must not need retries
    await _start_counter(db, sample_migrations)

    async def increment(session: AsyncSession) -> None:
        value = await _read_counter(session)
        await asyncio.sleep(0)  # let the other writers run between the read and the write
        await session.execute(
            text("UPDATE counters SET value = :v WHERE name = 'c'"), {"v": value + 1}
        )

    try:
        results = await asyncio.gather(
            *(db.run(increment) for _ in range(WRITERS)), return_exceptions=True
        )
        final = await db.run(_read_counter, readonly=True)
    finally:
        await db.dispose()
    assert [r for r in results if r is not None] == []
    assert final == WRITERS


async def test_concurrent_postgresql_writers_to_one_row_all_commit_through_retries(
    postgres_url: str, sample_migrations: Path
) -> None:
    """SERIALIZABLE conflicts on a hot row are retried until every increment lands once."""
    db = Database(postgres_url, service="test", max_attempts=20)
    await _start_counter(db, sample_migrations)
    attempts = 0

    async def increment(session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        value = await _read_counter(session)
        await asyncio.sleep(0)
        await session.execute(
            text("UPDATE counters SET value = :v WHERE name = 'c'"), {"v": value + 1}
        )

    writers = 10
    try:
        await asyncio.gather(*(db.run(increment) for _ in range(writers)))
        final = await db.run(_read_counter, readonly=True)
    finally:
        await db.dispose()
    assert final == writers
    assert attempts > writers  # conflicts really happened and were retried


async def test_a_postgresql_serialization_failure_is_retried(
    postgres_url: str, sample_migrations: Path
) -> None:
    """Two SERIALIZABLE transactions read then write one row: the loser reruns and succeeds."""
    db = Database(postgres_url, service="test")
    await _start_counter(db, sample_migrations)
    both_have_read = asyncio.Barrier(2)
    errors: list[BaseException] = []
    calls = 0

    async def add(session: AsyncSession, amount: int) -> None:
        nonlocal calls
        calls += 1
        value = await _read_counter(session)
        if calls <= 2:  # only the first attempts meet, so the rerun goes through alone
            await both_have_read.wait()
        try:
            await session.execute(
                text("UPDATE counters SET value = :v WHERE name = 'c'"), {"v": value + amount}
            )
            await session.flush()
        except Exception as error:
            errors.append(error)
            raise

    try:
        await asyncio.gather(
            db.run(lambda s: add(s, 1)),
            db.run(lambda s: add(s, 10)),
        )
        final = await db.run(_read_counter, readonly=True)
    finally:
        await db.dispose()
    assert final == 11
    assert calls == 3
    assert [getattr(getattr(e, "orig", None), "sqlstate", None) for e in errors] == ["40001"]
    assert all(is_transient(e) for e in errors)


async def test_a_busy_sqlite_database_is_retried(sqlite_url: str, sample_migrations: Path) -> None:
    """Another process holding the write lock past busy_timeout causes a rerun, not a failure."""
    db = Database(sqlite_url, service="test", busy_timeout_ms=50)
    await _start_counter(db, sample_migrations)
    assert db.path is not None
    other_process = sqlite3.connect(db.path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    calls = 0

    async def increment(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            other_process.execute("ROLLBACK")  # the other writer finishes between attempts
        await session.execute(text("UPDATE counters SET value = value + 1 WHERE name = 'c'"))

    try:
        await db.run(increment)
        final = await db.run(_read_counter, readonly=True)
    finally:
        other_process.close()
        await db.dispose()
    assert (calls, final) == (2, 1)


async def test_retries_that_run_out_surface_as_storage_unavailable(
    sqlite_url: str, sample_migrations: Path
) -> None:
    """A lock that is never released ends in StorageUnavailable after max_attempts tries."""
    from services.framework import StorageUnavailable

    db = Database(sqlite_url, service="test", busy_timeout_ms=10, max_attempts=3)
    await _start_counter(db, sample_migrations)
    assert db.path is not None
    other_process = sqlite3.connect(db.path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    calls = 0

    async def increment(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        await session.execute(text("UPDATE counters SET value = value + 1 WHERE name = 'c'"))

    try:
        with pytest.raises(StorageUnavailable):
            await db.run(increment)
    finally:
        other_process.close()
        await db.dispose()
    assert calls == 3

"""Database: transactions, the SQLite connection rules and the errors storage surfaces."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.framework import StorageUnavailable, Unavailable
from services.framework._storage import Database


async def _counter(db: Database, name: str = "c") -> int | None:
    async with db.transaction(readonly=True) as session:
        row = await session.execute(text("SELECT value FROM counters WHERE name = :n"), {"n": name})
        value = row.scalar_one_or_none()
    return None if value is None else int(value)


@pytest.fixture
async def migrated(database: Database, sample_migrations: Path) -> Database:
    await database.migrate(sample_migrations)
    return database


async def test_the_fixture_runs_on_the_backend_it_names(
    database: Database, database_url: str
) -> None:
    """The `sqlite` case runs on SQLite and the `postgres` case on a real PostgreSQL."""
    async with database.transaction(readonly=True) as session:
        await session.execute(text("SELECT 1"))
    expected = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    assert database.dialect == expected
    assert database.engine.dialect.name == expected


async def test_a_committed_write_is_seen_by_a_later_read(migrated: Database) -> None:
    """Leaving the block without an error commits."""
    async with migrated.transaction() as session:
        await session.execute(text("INSERT INTO counters VALUES ('c', 7)"))
    assert await _counter(migrated) == 7


async def test_an_error_in_the_block_rolls_the_write_back(migrated: Database) -> None:
    """An exception leaves nothing behind and reaches the caller unchanged."""

    async def insert_then_fail() -> None:
        async with migrated.transaction() as session:
            await session.execute(text("INSERT INTO counters VALUES ('c', 7)"))
            raise LookupError

    with pytest.raises(LookupError):
        await insert_then_fail()
    assert await _counter(migrated) is None


async def test_a_write_transaction_inside_another_is_refused(migrated: Database) -> None:
    """Nesting would wait on its own lock forever on SQLite, so it fails on both backends."""
    async with migrated.transaction():
        with pytest.raises(RuntimeError, match="inside another"):
            async with migrated.transaction():
                pass


async def test_run_returns_what_the_function_returns(migrated: Database) -> None:
    """run() commits the function's work and hands back its result."""

    async def insert(session: AsyncSession) -> str:
        await session.execute(text("INSERT INTO counters VALUES ('c', 1)"))
        return "done"

    assert await migrated.run(insert) == "done"
    assert await _counter(migrated) == 1


async def test_a_readonly_transaction_on_postgresql_refuses_writes(postgres_url: str) -> None:
    """READ ONLY is enforced by the server, so a read path cannot write by mistake."""
    db = Database(postgres_url, service="test")
    try:
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with db.transaction(readonly=True) as session:
                await session.execute(text("CREATE TABLE t (x int)"))
    finally:
        await db.dispose()


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    """Each pooled connection gets the pragmas the concurrency rules depend on."""
    db = Database(sqlite_url, service="test", busy_timeout_ms=1234)
    try:
        async with db.transaction(readonly=True) as session:
            pragmas = [
                (await session.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        await db.dispose()
    assert pragmas == ["wal", 1, 1234]


async def test_sqlite_reads_proceed_while_a_write_is_open(
    sqlite_url: str, sample_migrations: Path
) -> None:
    """A reader neither waits for the writer's lock nor sees its uncommitted row (WAL)."""
    db = Database(sqlite_url, service="test")
    try:
        await db.migrate(sample_migrations)
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO counters VALUES ('c', 1)"))
            seen = await asyncio.wait_for(_counter(db), timeout=2)
    finally:
        await db.dispose()
    assert seen is None


async def test_the_sqlite_file_and_its_directory_are_created(sqlite_url: str) -> None:
    """A fresh data directory needs no set-up step before the first start."""
    db = Database(sqlite_url, service="test")
    try:
        await db.ping()
    finally:
        await db.dispose()
    assert db.path is not None
    assert db.path.is_file()


async def test_an_unreachable_postgresql_is_storage_unavailable() -> None:
    """A refused connection maps to UNAVAILABLE / STORAGE_UNAVAILABLE, not INTERNAL."""
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x", service="test")
        try:
            with pytest.raises(StorageUnavailable) as caught:
                await db.ping()
        finally:
            await db.dispose()
    assert isinstance(caught.value, Unavailable)
    assert caught.value.reason == "STORAGE_UNAVAILABLE"


async def test_an_sqlite_file_that_cannot_be_opened_is_storage_unavailable(
    tmp_path: Path,
) -> None:
    """SQLITE_CANTOPEN (here: the path is a directory) surfaces as StorageUnavailable."""
    (tmp_path / "db").mkdir()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/db", service="test")
    try:
        with pytest.raises(StorageUnavailable):
            async with db.transaction() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    "url",
    ["sqlite:///x.db", "postgresql://u@h/d", "mysql+aiomysql://u@h/d", "sqlite+aiosqlite://"],
)
def test_a_url_without_a_supported_async_driver_is_refused(url: str) -> None:
    """Only sqlite+aiosqlite (with a file) and postgresql+asyncpg are accepted."""
    with pytest.raises(ValueError, match=r"unsupported database URL|in-memory"):
        Database(url, service="test")

"""Shared fixtures: a database on SQLite and on PostgreSQL, and the sample migrations.

Storage tests take `database` (or `database_url`) and run once per backend. PostgreSQL is the
server on 127.0.0.1:5432 (user postgres, trust auth): one throwaway database per test run,
emptied before each test and dropped at the end. Without the server the PostgreSQL cases
are skipped with the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

# Record every span in tests (services record only when exporting): the tracing tests read
# spans from an in-memory exporter. Set before any service configures tracing.
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")
# Every edge a test starts (and the processes it spawns) gets budgets no test reaches by
# accident; the rate-limit tests pass their own file.
os.environ.setdefault(
    "PAYNOW_EDGE_RATE_LIMITS_FILE", str(Path(__file__).with_name("rate_limits_relaxed.toml"))
)
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.framework._storage import Database

SAMPLE_MIGRATIONS = Path(__file__).parent / "integration" / "sample_migrations"
_PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


async def _admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(database="postgres", timeout=5, **_PG)
    except (OSError, asyncpg.PostgresError) as error:
        reason = f"PostgreSQL at 127.0.0.1:5432 is unreachable ({error})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)


async def _create_database(name: str) -> None:
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _drop_database(name: str) -> None:
    admin = await _admin_connection()
    try:
        # FORCE: a test that failed may have left a connection open.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _empty(database: str) -> str:
    connection = await asyncpg.connect(database=database, timeout=5, **_PG)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"


@pytest.fixture(scope="session")
async def postgres_database() -> AsyncIterator[str]:
    """The name of this run's throwaway PostgreSQL database (dropped when the run ends)."""
    name = f"paynow_test_{secrets.token_hex(6)}"
    await _create_database(name)
    yield name
    await _drop_database(name)


@pytest.fixture(scope="session")
async def second_postgres_database() -> AsyncIterator[str]:
    """A second throwaway database, for tests that run two services with one database each."""
    name = f"paynow_test_{secrets.token_hex(6)}"
    await _create_database(name)
    yield name
    await _drop_database(name)


@pytest.fixture
async def postgres_url(postgres_database: str) -> str:
    """A SQLAlchemy URL of the run's PostgreSQL database, with an empty public schema."""
    return await _empty(postgres_database)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a fresh SQLite file in a directory that does not exist yet."""
    return f"sqlite+aiosqlite:///{tmp_path}/data/test.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def second_database_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> str:
    """Another empty database on the same backend as `database_url` (for a second service)."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/data/second.db"
    url: str = request.getfixturevalue("_second_postgres_url")
    return url


@pytest.fixture
async def _second_postgres_url(second_postgres_database: str) -> str:
    return await _empty(second_postgres_database)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A Database on each backend in turn, disposed after the test."""
    db = Database(database_url, service="test")
    yield db
    await db.dispose()


@pytest.fixture
def sample_migrations() -> Path:
    """An Alembic directory with two revisions: `counters`, then `events` referencing it."""
    return SAMPLE_MIGRATIONS

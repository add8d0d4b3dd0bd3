"""Database.migrate: Alembic from code, idempotent, and safe with replicas starting together."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from services.framework._migrations import advisory_lock_key
from services.framework._storage import Database

ROOT = Path(__file__).resolve().parents[2]

_BROKEN_REVISION = '''"""Creates a table, then fails: the whole upgrade must roll back.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO no_such_table VALUES (1)")
'''


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _schema(db: Database) -> tuple[set[str], list[str]]:
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(_tables)
        versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
        return tables, [row[0] for row in versions]


async def test_migrate_creates_the_schema_at_the_head_revision(
    database: Database, sample_migrations: Path
) -> None:
    """Both revisions apply in order and alembic_version records the head."""
    await database.migrate(sample_migrations)
    assert await _schema(database) == ({"alembic_version", "counters", "events"}, ["0002"])


async def test_migrating_twice_is_a_no_op(database: Database, sample_migrations: Path) -> None:
    """A restart re-runs migrate: it changes nothing and keeps the data."""
    await database.migrate(sample_migrations)
    async with database.transaction() as session:
        await session.execute(text("INSERT INTO counters VALUES ('kept', 1)"))
    await database.migrate(sample_migrations)
    async with database.transaction(readonly=True) as session:
        kept = (await session.execute(text("SELECT value FROM counters"))).scalars().all()
    assert kept == [1]
    assert await _schema(database) == ({"alembic_version", "counters", "events"}, ["0002"])


async def test_two_databases_migrating_at_once_both_succeed(
    database_url: str, sample_migrations: Path
) -> None:
    """Two replicas starting together: one migrates, the other waits and finds nothing to do."""
    first = Database(database_url, service="test")
    second = Database(database_url, service="test")
    try:
        await asyncio.gather(first.migrate(sample_migrations), second.migrate(sample_migrations))
        schema = await _schema(first)
    finally:
        await first.dispose()
        await second.dispose()
    assert schema == ({"alembic_version", "counters", "events"}, ["0002"])


async def test_two_processes_migrating_at_once_both_succeed(
    database_url: str, sample_migrations: Path
) -> None:
    """The lock holds across processes, as replicas are: both exit 0 and the schema is right."""
    script = (
        "import asyncio, sys\n"
        "from services.framework._storage import Database\n"
        "async def main():\n"
        "    db = Database(sys.argv[1], service='test')\n"
        "    await db.migrate(sys.argv[2])\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            database_url,
            str(sample_migrations),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 60)
    for process, (output, _) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output.decode()
    db = Database(database_url, service="test")
    try:
        assert await _schema(db) == ({"alembic_version", "counters", "events"}, ["0002"])
    finally:
        await db.dispose()


async def test_a_failed_migration_is_logged_at_error_raised_and_rolled_back(
    database: Database, sample_migrations: Path, tmp_path: Path
) -> None:
    """Nothing of a failed upgrade stays behind, and the operator sees migration_failed."""
    broken = tmp_path / "migrations"
    shutil.copytree(sample_migrations, broken)
    (broken / "versions" / "0003_broken.py").write_text(_BROKEN_REVISION, encoding="utf-8")
    await database.migrate(sample_migrations)
    with capture_logs() as logs, pytest.raises(DBAPIError, match="no_such_table"):
        await database.migrate(broken)
    assert [e["log_level"] for e in logs if e["event"] == "migration_failed"] == ["error"]
    assert await _schema(database) == ({"alembic_version", "counters", "events"}, ["0002"])


def test_the_advisory_lock_key_never_changes() -> None:
    """Old and new replicas of a rolling deploy must agree on it, so the value is pinned."""
    assert advisory_lock_key("account") == 7394779295395125586


def test_each_service_has_its_own_advisory_lock_key() -> None:
    """Services sharing one PostgreSQL server do not wait for each other's migrations."""
    assert advisory_lock_key("account") != advisory_lock_key("auth")

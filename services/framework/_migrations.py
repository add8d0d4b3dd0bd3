"""Alembic, run from code: the cross-process migration lock, the upgrade, and env.py's body.

Each service keeps its revisions in `services/<name>/migrations/`, whose env.py is two lines
calling `run_migration_env`; there is no alembic.ini, because the URL comes from the
service's settings, which `Database.migrate` already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["advisory_lock_key", "migration_lock", "run_migration_env", "upgrade_head"]


def advisory_lock_key(service: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock`, the same in every process.

    Python's hash() is salted per process, so two replicas would not agree on it.
    """
    digest = hashlib.blake2b(f"paynow.migrate.{service}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.asynccontextmanager
async def migration_lock(
    engine: AsyncEngine, service: str, sqlite_path: Path | None
) -> AsyncIterator[None]:
    """Hold the service's migration lock: one migrator per database, across processes."""
    if sqlite_path is not None:
        async with _file_lock(sqlite_path.with_name(sqlite_path.name + ".migrate.lock")):
            yield
        return
    # A dedicated AUTOCOMMIT connection: a session-level advisory lock outlives the
    # migration's own transaction, and is released by the server if this process dies.
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        key = advisory_lock_key(service)
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    # flock locks belong to the open file, so two Database objects in one process exclude
    # each other too; the kernel drops the lock if the process dies. The blocking call runs
    # in a thread so the event loop (and the lock's current holder) keeps running.
    with path.open("a+b") as handle:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _config(script_location: Path) -> Config:
    config = Config()
    # Config values go through configparser interpolation, so a literal % must be doubled.
    config.set_main_option("script_location", str(script_location).replace("%", "%%"))
    return config


def upgrade_head(connection: Connection, script_location: str | Path) -> None:
    """Upgrade to head on `connection`, inside its transaction (call via `run_sync`)."""
    config = _config(Path(script_location).resolve())
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _run_on(connection: Connection, target_metadata: MetaData | None) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str, target_metadata: MetaData | None) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on, target_metadata)
    finally:
        await engine.dispose()


def run_migration_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's migrations/env.py.

    With the connection `Database.migrate` passes, migrations join its transaction and lock.
    Otherwise (the alembic command line, `-x url=…` or `sqlalchemy.url`), it opens its own
    async engine. Raises RuntimeError in --sql mode or when neither is given.
    """
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) migrations are not supported; use Database.migrate")
    connection: Any = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection, target_metadata)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: run through Database.migrate, or pass -x url=…")
    asyncio.run(_run_on_url(url, target_metadata))

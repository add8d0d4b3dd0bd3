"""Database: the one way services reach SQLite or PostgreSQL (SQLAlchemy 2, asyncio).

Both backends give the same guarantee, so domain code and its tests hold on either: a write
transaction is serializable, and a transient conflict is retried by `Database.run`.
- SQLite (aiosqlite, the default): WAL so readers never block, and write transactions begin
  with `BEGIN IMMEDIATE` under an in-process asyncio lock. Taking the write lock up front
  means two writers can never both hold a read lock and deadlock on the upgrade ("database
  is locked" despite busy_timeout); the asyncio lock queues this process's writers without
  spending busy_timeout polling; busy_timeout covers writers in other processes.
- PostgreSQL (asyncpg): SERIALIZABLE by default; serialization failures and deadlocks are
  retried. A service whose hot rows are contended and that locks them itself (account's
  wallets: `SELECT … FOR UPDATE` in id order, unique indexes for idempotency) passes
  `isolation="READ COMMITTED"`: contenders then wait for the lock instead of aborting and
  retrying, which under fifty concurrent debits of one wallet can exhaust the retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from ._errors import StorageUnavailable
from ._migrations import migration_lock, upgrade_head
from ._tracing import span

__all__ = ["Database", "StorageUnavailable"]

T = TypeVar("T")
log = structlog.get_logger(__name__)

_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_READONLY = "paynow_readonly"  # our execution option: the SQLite "begin" hook reads it
_PG_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# Connection exceptions, insufficient resources, operator intervention, missing database,
# bad credentials: nothing a retry inside this request can fix, but the server may recover.
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "3D000", "28")
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SQLITE_UNAVAILABLE = {10, 13, 14, 26}  # IOERR, FULL, CANTOPEN, NOTADB

_in_write: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "paynow_write_transactions", default=frozenset()
)


def _driver_error(error: BaseException) -> BaseException | None:
    return error.orig if isinstance(error, exc.DBAPIError) else None


def is_transient(error: BaseException) -> bool:
    """True if running the whole transaction again may succeed: PostgreSQL 40001/40P01,
    SQLite BUSY/LOCKED (another process held the write lock beyond busy_timeout)."""
    orig = _driver_error(error)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_RETRYABLE
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def is_unavailable(error: BaseException) -> bool:
    """True if the error means the database cannot be reached or used right now."""
    if isinstance(error, OSError | exc.TimeoutError):  # refused, reset, DNS, pool timeout
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    orig = _driver_error(error)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES)
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE


def _error_code(error: BaseException) -> str:
    # Only the driver's code: its message can quote the SQL parameters (customer data).
    orig = _driver_error(error)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    if code is None and isinstance(error, OSError):
        return f"{type(error).__name__}: {error}"  # refused/timed out, naming the host
    return f"{type(orig or error).__name__} {code or ''}".strip()


def _unavailable(service: str, error: BaseException) -> StorageUnavailable:
    # The details go to the operator's log; the client only learns to retry later.
    log.warning("storage_unavailable", service=service, error=_error_code(error))
    return StorageUnavailable(retry_after_s=1.0)


class Database:
    """An async engine with the transaction rules above.

    `url` is `sqlite+aiosqlite:///<file>` (the file and its directory are created) or
    `postgresql+asyncpg://…`; anything else raises ValueError. Errors that mean the database
    is unreachable, and transient conflicts left after retries, surface as
    StorageUnavailable (UNAVAILABLE, reason STORAGE_UNAVAILABLE); other errors pass through.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        service: str,
        max_attempts: int = 8,
        busy_timeout_ms: int = 5000,
        connect_timeout_s: float = 5.0,
        isolation: str = "SERIALIZABLE",
    ) -> None:
        self.url = make_url(url)
        self.service = service
        self.max_attempts = max_attempts
        backend = self.url.get_backend_name()
        if _DRIVERS.get(backend) != self.url.get_driver_name():
            raise ValueError(
                f"unsupported database URL {self.url.render_as_string(hide_password=True)!r}: "
                "use sqlite+aiosqlite:///<file> or postgresql+asyncpg://…"
            )
        self._write_lock: asyncio.Lock | None = None
        if backend == "sqlite":
            if self.url.database in (None, "", ":memory:"):
                raise ValueError("an in-memory SQLite database cannot be shared; give a file")
            self.path: Path | None = Path(self.url.database or "").resolve()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_lock = asyncio.Lock()
            self._engine = _create_async_engine(self.url, pool_pre_ping=True)
            self._install_sqlite_hooks(busy_timeout_ms)
            self._read_engine = self._engine.execution_options(**{_READONLY: True})
        else:
            self.path = None
            self._engine = _create_async_engine(
                self.url,
                isolation_level=isolation,
                pool_pre_ping=True,
                connect_args={"timeout": connect_timeout_s},
            )
            self._read_engine = self._engine.execution_options(postgresql_readonly=True)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine, for code that needs Core access (schema, raw SQL)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._engine.dialect.name

    def _install_sqlite_hooks(self, busy_timeout_ms: int) -> None:
        # SQLAlchemy's documented recipe for pysqlite/aiosqlite: turn off the driver's own
        # BEGIN handling (which also commits before DDL) and emit BEGIN ourselves.
        @event.listens_for(self._engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA synchronous=NORMAL",  # durable in WAL mode except on power loss
            ):
                cursor.execute(pragma)
            cursor.close()

        @event.listens_for(self._engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            readonly = connection.get_execution_options().get(_READONLY, False)
            connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    @contextlib.asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        # asyncio.Lock is not reentrant: a write transaction opened inside another in the
        # same task would wait for itself forever, so it is refused instead.
        active = _in_write.get()
        if id(self) in active:
            raise RuntimeError("a write transaction cannot be opened inside another one")
        token = _in_write.set(active | {id(self)})
        try:
            if self._write_lock is None:
                yield
            else:
                async with self._write_lock:
                    yield
        finally:
            _in_write.reset(token)

    @contextlib.asynccontextmanager
    async def _attempt(self, readonly: bool) -> AsyncIterator[AsyncSession]:
        turn = contextlib.nullcontext() if readonly else self._writer_turn()
        sessions = self._read_sessions if readonly else self._sessions
        async with turn, sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """Open a transaction: committed if the block succeeds, rolled back if it raises.

        A `readonly` one runs concurrently with others (PostgreSQL enforces READ ONLY).
        Write transactions must not nest (RuntimeError). Not retried: use `run` for that.
        Raises StorageUnavailable if the database is unreachable or the transaction conflicted.
        """
        try:
            async with self._attempt(readonly) as session:
                yield session
        except Exception as error:
            if is_unavailable(error) or is_transient(error):
                raise _unavailable(self.service, error) from error
            raise

    async def run(self, fn: Callable[[AsyncSession], Awaitable[T]], *, readonly: bool = False) -> T:
        """Run `fn(session)` in a transaction and return its result, retrying on conflict.

        A transient failure (see `is_transient`) rolls back and runs `fn` again, at most
        `max_attempts` times in all, after a jittered exponential pause; so `fn` must have no
        effects outside the session. Raises StorageUnavailable once attempts run out or the
        database is unreachable; any other error from `fn` propagates unchanged.
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                with span(
                    "db.transaction",
                    **{"db.system": self.dialect, "db.readonly": readonly, "attempt": attempt},
                ):
                    async with self._attempt(readonly) as session:
                        return await fn(session)
            except Exception as error:
                if is_unavailable(error):
                    raise _unavailable(self.service, error) from error
                if not is_transient(error):
                    raise
                if attempt == self.max_attempts:
                    log.warning("transaction_gave_up", service=self.service, attempts=attempt)
                    raise _unavailable(self.service, error) from error
                log.debug("transaction_retried", service=self.service, attempt=attempt)
                # Full jitter: contenders that collided once should not collide again.
                pause = min(0.5, 0.01 * 2**attempt)
                await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 (not a secret)
        raise AssertionError("unreachable: the loop returns or raises")

    async def ping(self) -> None:
        """Check the database answers; raises StorageUnavailable if it does not."""
        try:
            async with self._read_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            if is_unavailable(error):
                raise _unavailable(self.service, error) from error
            raise

    async def migrate(self, migrations_dir: str | Path) -> None:
        """Upgrade the schema to the head revision of `migrations_dir` (an Alembic directory).

        Safe with several replicas starting at once: the upgrade runs under a lock
        (PostgreSQL advisory lock, or a file lock beside the SQLite file), in one transaction,
        and a second run finds nothing to do. A failure is logged at error and raised
        (StorageUnavailable if the database is unreachable).
        """
        try:
            async with migration_lock(self._engine, self.service, self.path):
                writer = self._writer_turn() if self._write_lock else contextlib.nullcontext()
                async with writer, self._engine.begin() as connection:
                    await connection.run_sync(upgrade_head, migrations_dir)
        except Exception as error:
            log.error(
                "migration_failed",
                service=self.service,
                migrations=str(migrations_dir),
                exc_info=True,
            )
            if is_unavailable(error):
                raise _unavailable(self.service, error) from error
            raise
        log.info("migrations_applied", service=self.service, migrations=str(migrations_dir))

    async def dispose(self) -> None:
        """Close every pooled connection; the Database must not be used afterwards."""
        await self._engine.dispose()

"""Idempotency keys: a retried request returns the first answer and does nothing again.

Every unary RPC whose request has an `idempotency_key` field goes through `IdempotencyStore`
in the middleware, so a team adding such an RPC gets these semantics without writing code:

- first call with a key: a record is claimed (IN_PROGRESS, with a lease), the handler runs,
  and its response is stored (DONE);
- same key, same request: the stored response is returned; the handler does not run again;
- same key, other request: FAILED_PRECONDITION, IDEMPOTENCY_KEY_REUSED;
- same key while the first is still running: ABORTED, REQUEST_IN_PROGRESS (retry later);
- the first call failed with an error: the claim is released, so a retry runs again (the
  handler's own state checks make that safe, as Stripe does for errors it did not persist);
- the first call's process died mid-way: its lease expires and the next retry takes over.
  The lease is the call's own remaining deadline (60 s when it has none): a call cannot
  still be running once its deadline passed, so a crash blocks retries no longer than that.

Keys are scoped by method and caller, so two merchants' keys never collide, and are kept
for `retention` (24 hours by default, AIP-155) before they may be purged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog
from google.protobuf.message import Message
from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ._errors import IdempotencyKeyReused, RequestInProgress
from ._sql_types import UtcDateTime
from ._storage import Database

__all__ = ["IdempotencyStore", "idempotency_table", "request_fingerprint"]

M = TypeVar("M", bound=Message)
log = structlog.get_logger(__name__)

_IN_PROGRESS, _DONE = "IN_PROGRESS", "DONE"


def idempotency_table(metadata: MetaData) -> Table:
    """The `idempotency_records` table, declared on a service's metadata (for migrations)."""
    return Table(
        "idempotency_records",
        metadata,
        Column("scope", String(200), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("state", String(12), nullable=False),
        Column("response", LargeBinary),
        Column("lease_until", UtcDateTime, nullable=False),
        Column("create_time", UtcDateTime, nullable=False),
        Index("ix_idempotency_records_create_time", "create_time"),
    )


def request_fingerprint(request: Message, key_field: str = "idempotency_key") -> str:
    """A digest of the request without its key: equal digests mean the same request."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField(key_field)
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True)
class _Claim:
    fingerprint: str
    stored: bytes | None  # the earlier response, if the key is already DONE


class IdempotencyStore:
    """Claims, replays and records idempotent requests in a service's own database."""

    def __init__(
        self,
        database: Database,
        *,
        lease: timedelta = timedelta(seconds=60),
        retention: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._table = idempotency_table(MetaData())
        self._lease = lease
        self._retention = retention
        self._clock = clock

    async def run(
        self,
        scope: str,
        key: str,
        request: Message,
        response_type: type[M],
        handler: Callable[[], Awaitable[M]],
        *,
        lease: timedelta | None = None,
    ) -> M:
        """Run `handler` at most once per (scope, key) and return its (stored) response.

        Raises IdempotencyKeyReused if the key came with another request, RequestInProgress
        while another call holds the key; whatever `handler` raises releases the key.
        """
        held_for = self._lease if lease is None else min(lease, self._lease)
        fingerprint = request_fingerprint(request)
        claim = await self._database.run(
            lambda session: self._claim(session, scope, key, fingerprint, held_for)
        )
        if claim.stored is not None:
            log.info("idempotent_replay", scope=scope)
            return response_type.FromString(claim.stored)
        try:
            response = await handler()
        except BaseException:
            await self._database.run(lambda session: self._release(session, scope, key))
            raise
        await self._database.run(lambda session: self._record(session, scope, key, response))
        return response

    async def _claim(
        self, session: AsyncSession, scope: str, key: str, fingerprint: str, lease: timedelta
    ) -> _Claim:
        t = self._table
        now = self._clock()
        row = (
            await session.execute(
                select(t).where(t.c.scope == scope, t.c.key == key).with_for_update()
            )
        ).first()
        if row is not None and row.create_time < now - self._retention:
            await session.execute(delete(t).where(t.c.scope == scope, t.c.key == key))
            row = None
        if row is None:
            values = {
                "scope": scope,
                "key": key,
                "fingerprint": fingerprint,
                "state": _IN_PROGRESS,
                "response": None,
                "lease_until": now + lease,
                "create_time": now,
            }
            insert = pg_insert if self._database.dialect == "postgresql" else sqlite_insert
            # ON CONFLICT DO NOTHING: a concurrent first call may insert between our SELECT
            # and this INSERT; then we lost the race and answer as a concurrent duplicate.
            result = await session.execute(insert(t).values(**values).on_conflict_do_nothing())
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return _Claim(fingerprint, None)
            raise RequestInProgress(idempotency_key=key)
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(idempotency_key=key)
        if row.state == _DONE:
            return _Claim(fingerprint, bytes(row.response))
        if row.lease_until > now:
            raise RequestInProgress(idempotency_key=key)
        # The first call's holder died without finishing: take its claim over.
        await session.execute(
            update(t).where(t.c.scope == scope, t.c.key == key).values(lease_until=now + lease)
        )
        log.warning("idempotency_lease_taken_over", scope=scope)
        return _Claim(fingerprint, None)

    async def _release(self, session: AsyncSession, scope: str, key: str) -> None:
        t = self._table
        await session.execute(
            delete(t).where(t.c.scope == scope, t.c.key == key, t.c.state == _IN_PROGRESS)
        )

    async def _record(self, session: AsyncSession, scope: str, key: str, response: Message) -> None:
        t = self._table
        await session.execute(
            update(t)
            .where(t.c.scope == scope, t.c.key == key)
            .values(state=_DONE, response=response.SerializeToString(deterministic=True))
        )

    async def purge_expired(self, batch_size: int = 1000) -> int:
        """Delete records older than the retention period; returns how many went.

        At most `batch_size` rows per transaction, looping until a batch comes back short,
        so a backlog never holds the write lock (SQLite has one writer) for long. A record
        whose call still holds its lease is kept whatever its age: that call may yet finish."""
        t = self._table
        now = self._clock()
        cutoff = now - self._retention
        oldest = (
            select(t.c.scope, t.c.key)
            .where(t.c.create_time < cutoff, or_(t.c.state == _DONE, t.c.lease_until < now))
            .limit(batch_size)
        )

        async def purge(session: AsyncSession) -> int:
            # DELETE has no portable LIMIT: the batch is picked by its primary keys.
            query = delete(t).where(tuple_(t.c.scope, t.c.key).in_(oldest))
            result = await session.execute(query)
            return int(result.rowcount)  # type: ignore[attr-defined]

        deleted = 0
        while True:
            batch = await self._database.run(purge)
            deleted += batch
            if batch < batch_size:
                return deleted

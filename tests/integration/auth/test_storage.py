"""Auth's SQL repositories on SQLite and PostgreSQL: the retention purge's deletes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from services.auth.app import MIGRATIONS
from services.auth.domain import (
    AuthUnitOfWork,
    RefreshToken,
    Retention,
    Throttle,
    ThrottlePolicy,
    TokenFamily,
)
from services.auth.storage import SqlAuthUnitOfWork
from services.framework import Database, SqlUnitOfWorkRunner, new_id

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=7)
Runner = SqlUnitOfWorkRunner[SqlAuthUnitOfWork]


@pytest.fixture
async def uow(database: Database) -> Runner:
    """Auth's repositories over `database`, migrated to the head revision."""
    await database.migrate(MIGRATIONS)
    return SqlUnitOfWorkRunner(database, SqlAuthUnitOfWork)


async def session_with(uow: Runner, *expire_times: datetime) -> tuple[str, list[str]]:
    """A family with one token per expiry time; returns its id and the token digests."""
    family = TokenFamily(new_id("ses"), new_id("acc"), NOW - timedelta(days=60))
    hashes = [new_id("hash") for _ in expire_times]

    async def work(u: AuthUnitOfWork) -> None:
        await u.sessions.add_family(family)
        for token_hash, expire_time in zip(hashes, expire_times, strict=True):
            await u.sessions.add_token(
                RefreshToken(
                    token_hash, family.id, family.account_id, family.create_time, expire_time
                )
            )

    await uow(work)
    return family.id, hashes


async def surviving(uow: Runner, family_id: str, hashes: list[str]) -> tuple[bool, list[str]]:
    async def work(u: AuthUnitOfWork) -> tuple[bool, list[str]]:
        tokens = [h for h in hashes if await u.sessions.get_token(h) is not None]
        return await u.sessions.get_family(family_id) is not None, tokens

    return await uow(work, readonly=True)


async def throttle_keys(uow: Runner, *keys: str) -> list[str]:
    async def work(u: AuthUnitOfWork) -> list[str]:
        return sorted(await u.throttles.get_many(keys))

    return await uow(work, readonly=True)


async def test_tokens_past_the_cutoff_are_deleted_and_the_others_kept(uow: Runner) -> None:
    """Strictly before the cutoff goes; at or after it stays, and the family with it."""
    old = CUTOFF - timedelta(microseconds=1)
    family_id, (gone, at_cutoff, live) = await session_with(uow, old, CUTOFF, NOW)

    async def work(u: AuthUnitOfWork) -> tuple[list[str], int]:
        families = await u.sessions.delete_expired_tokens(CUTOFF, 1000)
        return families, await u.sessions.delete_empty_families(set(families))

    assert await uow(work) == ([family_id], 0)
    assert await surviving(uow, family_id, [gone, at_cutoff, live]) == (
        True,
        [at_cutoff, live],
    )


async def test_a_family_goes_with_its_last_token(uow: Runner) -> None:
    """Once every token of a family is deleted, the family is empty and deleted too."""
    old = CUTOFF - timedelta(days=1)
    family_id, hashes = await session_with(uow, old, old)
    kept_id, kept = await session_with(uow, NOW)

    async def work(u: AuthUnitOfWork) -> tuple[list[str], int]:
        families = await u.sessions.delete_expired_tokens(CUTOFF, 1000)
        return families, await u.sessions.delete_empty_families({*families, kept_id})

    assert await uow(work) == ([family_id, family_id], 1)
    assert await surviving(uow, family_id, hashes) == (False, [])
    assert await surviving(uow, kept_id, kept) == (True, kept)


async def test_a_stale_unlocked_throttle_is_deleted_and_the_others_kept(uow: Runner) -> None:
    """Deleted: old and unlocked, or old with a lock that ended. Kept: recent, or locked."""
    window_start = NOW - timedelta(minutes=15)
    old = window_start - timedelta(seconds=1)
    rows = [
        Throttle("email:old", 2, old),
        Throttle("email:lock-ended", 9, old, locked_until=NOW),
        Throttle("email:recent", 2, window_start + timedelta(seconds=1)),
        Throttle("addr:locked", 30, old, locked_until=NOW + timedelta(seconds=1)),
    ]

    async def save(u: AuthUnitOfWork) -> None:
        for row in rows:
            await u.throttles.save(row)

    await uow(save)

    async def purge(u: AuthUnitOfWork) -> int:
        return await u.throttles.delete_expired(window_start, NOW, 1000)

    assert await uow(purge) == 2
    assert await throttle_keys(uow, *(row.key for row in rows)) == ["addr:locked", "email:recent"]


async def test_each_delete_stops_at_its_limit(uow: Runner) -> None:
    """One call deletes at most `limit` rows, whatever the backlog."""
    old = CUTOFF - timedelta(days=1)
    await session_with(uow, old, old, old)

    async def save(u: AuthUnitOfWork) -> None:
        for n in range(3):
            await u.throttles.save(Throttle(f"addr:{n}", 1, old))

    await uow(save)

    async def purge(u: AuthUnitOfWork) -> tuple[int, int]:
        tokens = await u.sessions.delete_expired_tokens(CUTOFF, 2)
        return len(tokens), await u.throttles.delete_expired(CUTOFF, NOW, 2)

    assert await uow(purge) == (2, 2)
    assert await uow(purge) == (1, 1)


async def test_the_purge_clears_a_backlog_larger_than_a_batch(uow: Runner) -> None:
    """Retention loops over batches until none is full: every expired row goes."""
    expired = NOW - timedelta(days=30)
    sessions = [await session_with(uow, expired, expired) for _ in range(3)]
    kept_id, kept = await session_with(uow, expired, NOW)

    async def save(u: AuthUnitOfWork) -> None:
        for n in range(5):
            await u.throttles.save(Throttle(f"addr:{n}", 1, expired))

    await uow(save)
    retention = Retention(
        uow,
        token_retention=timedelta(days=7),
        throttle_policies=[ThrottlePolicy(window_s=900), ThrottlePolicy(window_s=60)],
        clock=lambda: NOW,
        batch_size=2,
    )
    assert await retention.purge() == 6 + 3 + 1 + 5
    for family_id, hashes in sessions:
        assert await surviving(uow, family_id, hashes) == (False, [])
    assert await surviving(uow, kept_id, kept) == (True, kept[1:])
    assert await throttle_keys(uow, *(f"addr:{n}" for n in range(5))) == []


async def test_the_purge_cutoffs_are_indexed(database: Database, uow: Runner) -> None:
    """The purge selects by expire_time and last_failure_time, never by a full scan."""

    def indexed_columns(connection: object, table: str) -> list[list[str | None]]:
        return [index["column_names"] for index in inspect(connection).get_indexes(table)]

    async with database.engine.connect() as connection:
        tokens = await connection.run_sync(indexed_columns, "refresh_tokens")
        throttles = await connection.run_sync(indexed_columns, "login_throttles")
    assert ["expire_time"] in tokens
    assert ["last_failure_time"] in throttles

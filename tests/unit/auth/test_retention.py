"""The retention purge over in-memory fakes: what goes, what stays, and in what batches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.auth.domain import (
    InvalidCredentials,
    RefreshTokenInvalid,
    Registrations,
    Retention,
    Sessions,
    Throttle,
    hash_refresh_token,
)
from services.framework import new_id

from .conftest import ADDRESS_POLICY, EMAIL_POLICY, PASSWORD, REFRESH_TTL, RETENTION
from .fakes import Clock, InMemoryStore

PAST_RETENTION_S = (REFRESH_TTL + RETENTION).total_seconds() + 1


async def person(registrations: Registrations) -> str:
    email = f"{new_id('usr')}@example.com"
    await registrations.register(email, PASSWORD, "Ada")
    return email


class CountingStore:
    """The store, counting its write transactions."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.writes = 0

    async def __call__(
        self, work: Callable[[Any], Awaitable[Any]], *, readonly: bool = False
    ) -> Any:
        self.writes += not readonly
        return await self.store(work, readonly=readonly)


async def test_an_expired_token_is_kept_for_the_retention_then_goes_with_its_family(
    sessions: Sessions,
    registrations: Registrations,
    retention: Retention,
    store: InMemoryStore,
    clock: Clock,
) -> None:
    """Only a token that expired more than the retention ago is deleted, then its family."""
    await sessions.login(await person(registrations), PASSWORD)
    clock.advance((REFRESH_TTL + RETENTION).total_seconds())
    assert await retention.purge() == 0
    clock.advance(1)
    assert await retention.purge() == 2
    assert (store.tables.tokens, store.tables.families) == ({}, {})


async def test_a_purged_token_is_refused_as_it_was_once_expired(
    sessions: Sessions, registrations: Registrations, retention: Retention, clock: Clock
) -> None:
    """Refresh answers REFRESH_TOKEN_INVALID before the purge and after it alike."""
    tokens = await sessions.login(await person(registrations), PASSWORD)
    clock.advance(REFRESH_TTL.total_seconds() + 1)
    with pytest.raises(RefreshTokenInvalid):
        await sessions.refresh(tokens.refresh_token)
    clock.advance(RETENTION.total_seconds())
    assert await retention.purge() == 2
    with pytest.raises(RefreshTokenInvalid):
        await sessions.refresh(tokens.refresh_token)


async def test_a_session_with_a_live_token_keeps_going(
    sessions: Sessions,
    registrations: Registrations,
    retention: Retention,
    store: InMemoryStore,
    clock: Clock,
) -> None:
    """The rotated-out token goes; the family and its newest token stay and still refresh."""
    first = await sessions.login(await person(registrations), PASSWORD)
    clock.advance(timedelta(days=20).total_seconds())
    second = await sessions.refresh(first.refresh_token)
    clock.advance(timedelta(days=20).total_seconds())  # the first expired 10 days ago
    assert await retention.purge() == 1
    assert list(store.tables.tokens) == [hash_refresh_token(second.refresh_token)]
    assert (await sessions.refresh(second.refresh_token)).refresh_token


async def test_failures_older_than_the_window_are_purged(
    sessions: Sessions,
    registrations: Registrations,
    retention: Retention,
    store: InMemoryStore,
    clock: Clock,
) -> None:
    """Unlocked throttles (email and address) whose last failure left the window go."""
    email = await person(registrations)
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            await sessions.login(email, "not the password at all", "203.0.113.7")
    clock.advance(max(EMAIL_POLICY.window_s, ADDRESS_POLICY.window_s))
    assert await retention.purge() == 0
    clock.advance(1)
    assert await retention.purge() == 2
    assert store.tables.throttles == {}


async def test_a_lock_outlasting_the_window_is_kept_until_it_ends(
    retention: Retention, store: InMemoryStore, clock: Clock
) -> None:
    """A throttle still locked is never deleted, however old its last failure."""
    window = timedelta(seconds=EMAIL_POLICY.window_s)
    store.tables.throttles["email:k"] = Throttle(
        "email:k", 9, clock.now - 2 * window, locked_until=clock.now + timedelta(seconds=60)
    )
    assert await retention.purge() == 0
    clock.advance(60)
    assert await retention.purge() == 1


async def test_a_backlog_is_purged_in_transactions_of_one_batch_each(
    sessions: Sessions, registrations: Registrations, store: InMemoryStore, clock: Clock
) -> None:
    """Five expired tokens in batches of two: three token transactions, then one for throttles."""
    email = await person(registrations)
    for _ in range(5):
        await sessions.login(email, PASSWORD)
    counting = CountingStore(store)
    retention = Retention(
        counting,
        token_retention=RETENTION,
        throttle_policies=[EMAIL_POLICY],
        clock=clock,
        batch_size=2,
    )
    clock.advance(PAST_RETENTION_S)
    assert await retention.purge() == 10
    assert counting.writes == 4
    assert (store.tables.tokens, store.tables.families) == ({}, {})


async def test_the_purge_logs_its_counts_and_nothing_else(
    sessions: Sessions, registrations: Registrations, retention: Retention, clock: Clock
) -> None:
    """One line with a count per table: no token, digest, family or account id."""
    await sessions.login(await person(registrations), PASSWORD)
    clock.advance(PAST_RETENTION_S)
    with capture_logs() as logs:
        await retention.purge()
    assert logs == [
        {
            "event": "expired_rows_purged",
            "log_level": "info",
            "refresh_tokens": 1,
            "token_families": 1,
            "login_throttles": 0,
        }
    ]


def test_a_batch_holds_at_least_one_row(store: InMemoryStore, clock: Clock) -> None:
    """batch_size 0 would loop forever, so it is refused."""
    with pytest.raises(ValueError, match="batch_size"):
        Retention(
            store,
            token_retention=RETENTION,
            throttle_policies=[EMAIL_POLICY],
            clock=clock,
            batch_size=0,
        )

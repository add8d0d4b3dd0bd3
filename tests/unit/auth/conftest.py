"""The auth domain wired to in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain import Registrations, Retention, Sessions, ThrottlePolicy

from .fakes import Clock, FakeAccounts, FakeHasher, FakeSigner, InMemoryStore

PASSWORD = "correct horse battery staple"
REFRESH_TTL = timedelta(days=30)
RETENTION = timedelta(days=7)
EMAIL_POLICY = ThrottlePolicy(free_failures=3, base_delay_s=1, max_delay_s=60)
ADDRESS_POLICY = ThrottlePolicy(free_failures=5, base_delay_s=1, max_delay_s=60)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


@pytest.fixture
def directory() -> FakeAccounts:
    return FakeAccounts()


@pytest.fixture
def registrations(
    store: InMemoryStore, hasher: FakeHasher, directory: FakeAccounts, clock: Clock
) -> Registrations:
    return Registrations(store, hasher, directory, default_currency="EUR", clock=clock)


@pytest.fixture
def sessions(store: InMemoryStore, hasher: FakeHasher, clock: Clock) -> Sessions:
    return Sessions(
        store,
        hasher,
        FakeSigner(),
        refresh_ttl=REFRESH_TTL,
        email_policy=EMAIL_POLICY,
        address_policy=ADDRESS_POLICY,
        clock=clock,
    )


@pytest.fixture
def retention(store: InMemoryStore, clock: Clock) -> Retention:
    """The purge over the same store and policies as `sessions`, in batches of two rows."""
    return Retention(
        store,
        token_retention=RETENTION,
        throttle_policies=[EMAIL_POLICY, ADDRESS_POLICY],
        clock=clock,
        batch_size=2,
    )

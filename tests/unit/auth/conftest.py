"""The auth domain wired to in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.auth.domain import Registrations, Sessions, ThrottlePolicy

from .fakes import Clock, FakeAccounts, FakeHasher, FakeSigner, InMemoryStore

PASSWORD = "correct horse battery staple"


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
        refresh_ttl=timedelta(days=30),
        email_policy=ThrottlePolicy(free_failures=3, base_delay_s=1, max_delay_s=60),
        address_policy=ThrottlePolicy(free_failures=5, base_delay_s=1, max_delay_s=60),
        clock=clock,
    )

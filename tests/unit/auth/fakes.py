"""In-memory adapters with the same contracts as the real ones, for fast domain tests."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from services.auth.domain import (
    AccountRequestRefused,
    AccountsUnavailable,
    Credential,
    CredentialState,
    DuplicateKey,
    EmailTaken,
    RefreshToken,
    SignedToken,
    Throttle,
    TokenFamily,
)
from services.framework import new_id

T = TypeVar("T")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class _Tables:
    credentials: dict[str, Credential] = field(default_factory=dict)
    families: dict[str, TokenFamily] = field(default_factory=dict)
    tokens: dict[str, RefreshToken] = field(default_factory=dict)
    throttles: dict[str, Throttle] = field(default_factory=dict)


class InMemoryCredentialRepository:
    def __init__(self, tables: _Tables) -> None:
        self._t = tables

    async def get(self, email_key: str) -> Credential | None:
        return self._t.credentials.get(email_key)

    async def get_by_account(self, account_id: str) -> Credential | None:
        found = (c for c in self._t.credentials.values() if c.account_id == account_id)
        return next(found, None)

    async def add(self, credential: Credential) -> None:
        if credential.email_key in self._t.credentials:
            raise DuplicateKey(credential.email_key)
        self._t.credentials[credential.email_key] = credential

    async def activate(
        self, email_key: str, registration_id: str, account_id: str, now: datetime
    ) -> bool:
        row = self._t.credentials.get(email_key)
        if row is None or row.registration_id != registration_id:
            return False
        if row.state is not CredentialState.PENDING:
            return False
        self._t.credentials[email_key] = dataclasses.replace(
            row, state=CredentialState.ACTIVE, account_id=account_id, update_time=now
        )
        return True

    async def delete_pending(self, email_key: str, registration_id: str) -> bool:
        row = self._t.credentials.get(email_key)
        if row and row.registration_id == registration_id and row.state is CredentialState.PENDING:
            del self._t.credentials[email_key]
            return True
        return False

    async def set_password_hash(self, email_key: str, password_hash: str, now: datetime) -> None:
        row = self._t.credentials[email_key]
        self._t.credentials[email_key] = dataclasses.replace(
            row, password_hash=password_hash, update_time=now
        )

    async def list_pending(self, created_before: datetime, limit: int) -> list[Credential]:
        rows = [
            c
            for c in self._t.credentials.values()
            if c.state is CredentialState.PENDING and c.create_time < created_before
        ]
        return sorted(rows, key=lambda c: c.create_time)[:limit]


class InMemorySessionRepository:
    def __init__(self, tables: _Tables) -> None:
        self._t = tables

    async def add_family(self, family: TokenFamily) -> None:
        self._t.families[family.id] = family

    async def get_family(self, family_id: str) -> TokenFamily | None:
        return self._t.families.get(family_id)

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        family = self._t.families[family_id]
        if family.revoke_time is None:
            self._t.families[family_id] = dataclasses.replace(family, revoke_time=now)

    async def revoke_account(self, account_id: str, now: datetime) -> int:
        live = [
            f for f in self._t.families.values() if f.account_id == account_id and not f.revoke_time
        ]
        for family in live:
            await self.revoke_family(family.id, now)
        return len(live)

    async def add_token(self, token: RefreshToken) -> None:
        self._t.tokens[token.token_hash] = token

    async def get_token(self, token_hash: str) -> RefreshToken | None:
        return self._t.tokens.get(token_hash)

    async def mark_used(self, token_hash: str, now: datetime) -> bool:
        token = self._t.tokens[token_hash]
        if token.used_time is not None:
            return False
        self._t.tokens[token_hash] = dataclasses.replace(token, used_time=now)
        return True

    async def delete_expired_tokens(self, expired_before: datetime, limit: int) -> list[str]:
        expired = [t for t in self._t.tokens.values() if t.expire_time < expired_before][:limit]
        for token in expired:
            del self._t.tokens[token.token_hash]
        return [token.family_id for token in expired]

    async def delete_empty_families(self, family_ids: Collection[str]) -> int:
        in_use = {token.family_id for token in self._t.tokens.values()}
        empty = {f for f in family_ids if f in self._t.families and f not in in_use}
        for family_id in empty:
            del self._t.families[family_id]
        return len(empty)


class InMemoryThrottleRepository:
    def __init__(self, tables: _Tables) -> None:
        self._t = tables

    async def get_many(self, keys: Sequence[str]) -> dict[str, Throttle]:
        return {k: self._t.throttles[k] for k in keys if k in self._t.throttles}

    async def save(self, throttle: Throttle) -> None:
        self._t.throttles[throttle.key] = throttle

    async def delete(self, key: str) -> None:
        self._t.throttles.pop(key, None)

    async def delete_expired(self, failed_before: datetime, now: datetime, limit: int) -> int:
        stale = [
            t.key
            for t in self._t.throttles.values()
            if t.last_failure_time < failed_before
            and (t.locked_until is None or t.locked_until <= now)
        ][:limit]
        for key in stale:
            del self._t.throttles[key]
        return len(stale)


class InMemoryUnitOfWork:
    def __init__(self, tables: _Tables) -> None:
        self.credentials = InMemoryCredentialRepository(tables)
        self.sessions = InMemorySessionRepository(tables)
        self.throttles = InMemoryThrottleRepository(tables)


class InMemoryStore:
    """The 'database': one writer at a time, and all-or-nothing units of work."""

    def __init__(self) -> None:
        self.tables = _Tables()
        self.write_lock = asyncio.Lock()

    async def __call__(
        self, work: Callable[[InMemoryUnitOfWork], Awaitable[T]], *, readonly: bool = False
    ) -> T:
        if readonly:
            return await work(InMemoryUnitOfWork(copy.deepcopy(self.tables)))
        async with self.write_lock:
            working = copy.deepcopy(self.tables)
            result = await work(InMemoryUnitOfWork(working))
            self.tables = working
            return result


class FakeHasher:
    """A transparent 'hash' that counts verifications, so tests can compare the work done."""

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.verifications = 0

    async def hash(self, password: str) -> str:
        return f"{self.version}:{password}"

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verifications += 1
        if password_hash is None:
            return False
        return password_hash.partition(":")[2] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"{self.version}:")


class FakeSigner:
    def sign(self, subject: str, now: datetime) -> SignedToken:
        return SignedToken(f"access-for-{subject}-{new_id('jti')}", now + timedelta(minutes=5))


class FakeAccounts:
    """account's CreateAccount: idempotent by registration id, emails unique ignoring case."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.down = False
        self.refuse: tuple[str, str] | None = None
        self.calls: list[str] = []

    async def create_personal_account(self, credential: Credential) -> str:
        self.calls.append(credential.registration_id)
        if self.down:
            raise AccountsUnavailable()
        if self.refuse:
            raise AccountRequestRefused(*self.refuse)
        key = credential.registration_id
        if key in self.by_key:
            return self.by_key[key]
        if credential.email.casefold() in self.emails:
            raise EmailTaken()
        account_id = new_id("acc")
        self.by_key[key] = account_id
        self.emails[credential.email.casefold()] = account_id
        return account_id

"""In-memory adapters with the same contracts as the SQL ones, for fast domain tests."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from services.account.domain import Account, AccountKind, DuplicateKey, LedgerEntry, Transfer
from services.framework import PageRequest

T = TypeVar("T")


@dataclass
class _Tables:
    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[tuple[str, str], Transfer] = field(default_factory=dict)
    entries: list[LedgerEntry] = field(default_factory=list)


class InMemoryAccountRepository:
    def __init__(self, tables: _Tables) -> None:
        self._t = tables

    async def get(self, account_id: str) -> Account | None:
        return self._t.accounts.get(account_id)

    async def lock(self, account_ids: Sequence[str]) -> dict[str, Account]:
        return {i: self._t.accounts[i] for i in sorted(set(account_ids)) if i in self._t.accounts}

    async def get_by_email(self, email: str) -> Account | None:
        wanted = email.casefold()
        return next(
            (
                a
                for a in self._t.accounts.values()
                if a.kind is AccountKind.PERSONAL and a.email.casefold() == wanted
            ),
            None,
        )

    async def get_by_creation_key(self, creation_key: str) -> Account | None:
        return next((a for a in self._t.accounts.values() if a.creation_key == creation_key), None)

    async def list_owned(self, owner_id: str, page: PageRequest) -> list[Account]:
        owned = sorted(
            (a for a in self._t.accounts.values() if a.owner_id == owner_id),
            key=lambda a: (a.create_time.isoformat(), a.id),
        )
        if page.after:
            owned = [a for a in owned if (a.create_time.isoformat(), a.id) > page.after]
        return owned[: page.size + 1]

    async def add(self, account: Account) -> None:
        if account.id in self._t.accounts or (
            account.creation_key and await self.get_by_creation_key(account.creation_key)
        ):
            raise DuplicateKey(account.id)
        if account.kind is AccountKind.PERSONAL and await self.get_by_email(account.email):
            raise DuplicateKey(account.email)
        self._t.accounts[account.id] = account

    async def save(self, account: Account, expected_version: int) -> bool:
        if self._t.accounts[account.id].version != expected_version:
            return False
        self._t.accounts[account.id] = account
        return True


class InMemoryLedgerRepository:
    def __init__(self, tables: _Tables) -> None:
        self._t = tables

    async def get_transfer(self, scope: str, key: str) -> Transfer | None:
        return self._t.transfers.get((scope, key))

    async def get_entry(self, transfer_id: str, account_id: str) -> LedgerEntry | None:
        return next(
            (
                e
                for e in self._t.entries
                if e.transfer_id == transfer_id and e.account_id == account_id
            ),
            None,
        )

    async def add_transfer(self, transfer: Transfer, entries: Sequence[LedgerEntry]) -> None:
        scope_key = (transfer.idempotency_scope, transfer.idempotency_key)
        if scope_key in self._t.transfers:
            raise DuplicateKey(transfer.idempotency_key)
        self._t.transfers[scope_key] = transfer
        self._t.entries.extend(entries)

    async def list_entries(
        self,
        account_id: str,
        start_time: datetime | None,
        end_time: datetime | None,
        page: PageRequest,
    ) -> list[LedgerEntry]:
        rows = [
            e
            for e in self._t.entries
            if e.account_id == account_id
            and (start_time is None or e.create_time >= start_time)
            and (end_time is None or e.create_time < end_time)
        ]
        rows.sort(key=lambda e: (e.create_time.isoformat(), e.id), reverse=True)
        if page.after:
            rows = [e for e in rows if (e.create_time.isoformat(), e.id) < page.after]
        return rows[: page.size + 1]


class InMemoryUnitOfWork:
    def __init__(self, tables: _Tables) -> None:
        self.accounts = InMemoryAccountRepository(tables)
        self.ledger = InMemoryLedgerRepository(tables)


class InMemoryStore:
    """The 'database': committed tables, one writer at a time (like row locks), and
    all-or-nothing units of work (a failed one leaves no trace)."""

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

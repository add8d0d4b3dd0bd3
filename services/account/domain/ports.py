"""What the domain needs from storage. The SQL adapters in `storage.py` implement these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.framework import PageRequest

from .models import Account, LedgerEntry, Transfer

__all__ = ["AccountRepository", "AccountUnitOfWork", "DuplicateKey", "LedgerRepository"]


class DuplicateKey(Exception):
    """A unique constraint refused a write: a concurrent request created the same thing."""


class AccountRepository(Protocol):
    async def get(self, account_id: str) -> Account | None: ...

    async def lock(self, account_ids: Sequence[str]) -> dict[str, Account]:
        """Read and lock these accounts for the rest of the transaction, in id order so two
        transfers between the same accounts can never deadlock."""
        ...

    async def get_by_email(self, email: str) -> Account | None:
        """The personal account with this email, compared case-insensitively."""
        ...

    async def get_by_creation_key(self, creation_key: str) -> Account | None: ...

    async def list_owned(self, owner_id: str, page: PageRequest) -> list[Account]:
        """Oldest first; at most `page.size + 1` rows, so the caller can tell if more remain."""
        ...

    async def add(self, account: Account) -> None:
        """Insert; raises DuplicateKey if the id, email or creation key is taken."""
        ...

    async def save(self, account: Account, expected_version: int) -> bool:
        """Update if the stored version is still `expected_version`; False if it moved on."""
        ...


class LedgerRepository(Protocol):
    async def get_transfer(self, scope: str, key: str) -> Transfer | None: ...

    async def get_entry(self, transfer_id: str, account_id: str) -> LedgerEntry | None: ...

    async def add_transfer(self, transfer: Transfer, entries: Sequence[LedgerEntry]) -> None:
        """Insert a transfer and its entries; raises DuplicateKey if the key is taken."""
        ...

    async def list_entries(
        self,
        account_id: str,
        start_time: datetime | None,
        end_time: datetime | None,
        page: PageRequest,
    ) -> list[LedgerEntry]:
        """Newest first (by create_time, then id); at most `page.size + 1` entries."""
        ...


class AccountUnitOfWork(Protocol):
    """The account service's repositories, bound to one transaction."""

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def ledger(self) -> LedgerRepository: ...

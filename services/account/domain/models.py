"""The account service's data: accounts, ledger entries and transfers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

__all__ = [
    "MAX_BALANCE_MINOR",
    "Account",
    "AccountKind",
    "AccountState",
    "EntryKind",
    "LedgerEntry",
    "Transfer",
    "funding_account_id",
]

# Balances are int64 on the wire and in the database; a credit past this is refused.
MAX_BALANCE_MINOR = 2**63 - 1


class AccountKind(enum.Enum):
    PERSONAL = "PERSONAL"
    MERCHANT_SETTLEMENT = "MERCHANT_SETTLEMENT"
    # The other side of every deposit: money entering PayNow from outside. Its balance is
    # the negative of all money deposited in its currency, so the ledger always sums to zero.
    # Internal only: never returned by the API.
    EXTERNAL_FUNDING = "EXTERNAL_FUNDING"


class AccountState(enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CLOSED = "CLOSED"


class EntryKind(enum.Enum):
    DEPOSIT = "DEPOSIT"
    TRANSFER_OUT = "TRANSFER_OUT"
    TRANSFER_IN = "TRANSFER_IN"


def funding_account_id(currency_code: str) -> str:
    """The id of the external funding account of a currency (`acc_external…eur`)."""
    return "acc_external" + "0" * 12 + currency_code.lower()


@dataclass(frozen=True)
class Account:
    id: str
    kind: AccountKind
    state: AccountState
    currency_code: str
    balance_minor: int
    owner_id: str
    email: str
    display_name: str
    create_time: datetime
    update_time: datetime
    # Incremented on every change; the etag clients see is derived from it.
    version: int = 1
    # The caller's key that created it, so a retried CreateAccount returns it again.
    creation_key: str = ""

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    def changed(self, now: datetime, **changes: object) -> Account:
        """A copy with `changes` applied, the version bumped and update_time set."""
        return replace(self, **changes, version=self.version + 1, update_time=now)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    account_id: str
    kind: EntryKind
    amount_minor: int
    currency_code: str
    balance_after_minor: int
    counterparty_account_id: str
    transfer_id: str
    memo: str
    create_time: datetime


@dataclass(frozen=True)
class Transfer:
    id: str
    from_account_id: str
    to_account_id: str
    amount_minor: int
    currency_code: str
    memo: str
    # Keys are unique within a scope (`deposit:<user>` or `transfer:<service>`), so one
    # caller's key can never replay another caller's movement.
    idempotency_scope: str
    idempotency_key: str
    create_time: datetime

"""In-memory adapters for the merchant domain: storage, and an account service that can fail."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from services.framework import PageRequest, new_id
from services.merchant.domain import (
    AccountServiceUnavailable,
    ApiKey,
    DuplicateKey,
    Merchant,
    Payment,
    PaymentState,
    Refund,
    TransferRefused,
)

T = TypeVar("T")


@dataclass
class _Tables:
    merchants: dict[str, Merchant] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)


def _newest_first(rows: list[T], page: PageRequest) -> list[T]:
    rows = sorted(rows, key=lambda r: (r.create_time.isoformat(), r.id), reverse=True)  # type: ignore[attr-defined]
    if page.after:
        rows = [r for r in rows if (r.create_time.isoformat(), r.id) < page.after]  # type: ignore[attr-defined]
    return rows[: page.size + 1]


class _Merchants:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get(self, merchant_id: str) -> Merchant | None:
        return self.t.merchants.get(merchant_id)

    async def get_by_creation_key(self, creation_key: str) -> Merchant | None:
        return next((m for m in self.t.merchants.values() if m.creation_key == creation_key), None)

    async def list_owned(self, owner_id: str, page: PageRequest) -> list[Merchant]:
        return _newest_first([m for m in self.t.merchants.values() if m.owner_id == owner_id], page)

    async def add(self, merchant: Merchant) -> None:
        if await self.get_by_creation_key(merchant.creation_key):
            raise DuplicateKey(merchant.creation_key)
        self.t.merchants[merchant.id] = merchant


class _Keys:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get(self, key_id: str) -> ApiKey | None:
        return self.t.keys.get(key_id)

    async def find_by_prefix(self, key_prefix: str) -> list[ApiKey]:
        return [k for k in self.t.keys.values() if k.key_prefix == key_prefix]

    async def list_for_merchant(self, merchant_id: str, page: PageRequest) -> list[ApiKey]:
        return _newest_first(
            [k for k in self.t.keys.values() if k.merchant_id == merchant_id], page
        )

    async def add(self, key: ApiKey) -> None:
        self.t.keys[key.id] = key

    async def save(self, key: ApiKey) -> None:
        self.t.keys[key.id] = key

    async def save_hash(self, key: ApiKey) -> None:
        self.t.keys[key.id] = key


class _Payments:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get(self, payment_id: str, *, lock: bool = False) -> Payment | None:
        return self.t.payments.get(payment_id)

    async def get_by_creation_key(self, merchant_id: str, key: str) -> Payment | None:
        return next(
            (
                p
                for p in self.t.payments.values()
                if p.merchant_id == merchant_id and p.creation_key == key
            ),
            None,
        )

    async def add(self, payment: Payment) -> None:
        if await self.get_by_creation_key(payment.merchant_id, payment.creation_key):
            raise DuplicateKey(payment.creation_key)
        self.t.payments[payment.id] = payment

    async def save(self, payment: Payment, expected_version: int) -> bool:
        if self.t.payments[payment.id].version != expected_version:
            return False
        self.t.payments[payment.id] = payment
        return True

    async def list_for_merchant(
        self, merchant_id: str, state: PaymentState | None, page: PageRequest
    ) -> list[Payment]:
        rows = [
            p
            for p in self.t.payments.values()
            if p.merchant_id == merchant_id and (state is None or p.state is state)
        ]
        return _newest_first(rows, page)

    async def list_for_payer(self, payer_account_id: str, page: PageRequest) -> list[Payment]:
        rows = [
            p
            for p in self.t.payments.values()
            if p.payer_account_id == payer_account_id
            and p.state is not PaymentState.REQUIRES_APPROVAL
        ]
        return _newest_first(rows, page)

    async def interrupted_approvals(self, started_before: datetime) -> list[Payment]:
        return [
            p
            for p in self.t.payments.values()
            if p.state is PaymentState.REQUIRES_APPROVAL
            and p.approval_start_time is not None
            and p.approval_start_time < started_before
        ]

    async def overdue(self, now: datetime, limit: int) -> list[Payment]:
        return [
            p
            for p in self.t.payments.values()
            if p.state is PaymentState.REQUIRES_APPROVAL
            and p.approval_start_time is None
            and p.expire_time <= now
        ][:limit]


class _Refunds:
    def __init__(self, t: _Tables) -> None:
        self.t = t

    async def get_by_key(self, payment_id: str, idempotency_key: str) -> Refund | None:
        return next(
            (
                r
                for r in self.t.refunds.values()
                if r.payment_id == payment_id and r.idempotency_key == idempotency_key
            ),
            None,
        )

    async def pending_total(self, payment_id: str) -> int:
        return sum(
            r.amount_minor
            for r in self.t.refunds.values()
            if r.payment_id == payment_id and not r.succeeded
        )

    async def add(self, refund: Refund) -> None:
        self.t.refunds[refund.id] = refund

    async def mark_succeeded(self, refund_id: str) -> None:
        self.t.refunds[refund_id] = replace(self.t.refunds[refund_id], succeeded=True)

    async def delete(self, refund_id: str) -> None:
        if not self.t.refunds[refund_id].succeeded:
            del self.t.refunds[refund_id]

    async def interrupted(self, created_before: datetime) -> Sequence[Refund]:
        return [
            r for r in self.t.refunds.values() if not r.succeeded and r.create_time < created_before
        ]


class FakeUnitOfWork:
    def __init__(self, t: _Tables) -> None:
        self.merchants = _Merchants(t)
        self.api_keys = _Keys(t)
        self.payments = _Payments(t)
        self.refunds = _Refunds(t)


class InMemoryStore:
    """All-or-nothing units of work over in-memory tables, one writer at a time."""

    def __init__(self) -> None:
        self.tables = _Tables()
        self._lock = asyncio.Lock()

    async def __call__(
        self, work: Callable[[FakeUnitOfWork], Awaitable[T]], *, readonly: bool = False
    ) -> T:
        async with self._lock:
            working = copy.deepcopy(self.tables)
            result = await work(FakeUnitOfWork(working))
            if not readonly:
                self.tables = working
            return result


class FakeAccounts:
    """An account service with balances, idempotent transfers, and a switch to go down."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.transfers: dict[str, str] = {}  # key -> transfer id
        self.down = False
        # Apply the transfer, then fail: the caller cannot know it happened.
        self.fail_after_transfer = False

    async def create_settlement_account(
        self, *, owner_id: str, display_name: str, currency_code: str, creation_key: str
    ) -> str:
        if self.down:
            raise AccountServiceUnavailable()
        account_id = "acc_" + creation_key.encode().hex()[:26].ljust(26, "0")
        self.balances.setdefault(account_id, 0)
        return account_id

    async def transfer(
        self,
        *,
        from_account_id: str,
        to_account_id: str,
        amount_minor: int,
        currency_code: str,
        memo: str,
        key: str,
    ) -> str:
        if self.down:
            raise AccountServiceUnavailable()
        if key not in self.transfers:
            if self.balances.get(from_account_id, 0) < amount_minor:
                raise TransferRefused("INSUFFICIENT_FUNDS")
            self.balances[from_account_id] -= amount_minor
            self.balances[to_account_id] = self.balances.get(to_account_id, 0) + amount_minor
            self.transfers[key] = new_id("trf")
        if self.fail_after_transfer:
            raise AccountServiceUnavailable()
        return self.transfers[key]

    async def lookup_transfer(self, key: str) -> str | None:
        if self.down:
            raise AccountServiceUnavailable()
        return self.transfers.get(key)

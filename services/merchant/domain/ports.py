"""What the merchant domain needs from storage and from the account service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.framework import PageRequest

from .models import ApiKey, Merchant, Payment, PaymentState, Refund

__all__ = [
    "AccountGateway",
    "ApiKeyRepository",
    "DuplicateKey",
    "MerchantRepository",
    "MerchantUnitOfWork",
    "PaymentRepository",
    "RefundRepository",
    "TransferRefused",
]


class DuplicateKey(Exception):
    """A unique constraint refused a write: a concurrent request created the same thing."""


class TransferRefused(Exception):
    """The account service refused a transfer for a business reason (not an outage)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountGateway(Protocol):
    """The account service, as the merchant domain uses it.

    Every method raises AccountServiceUnavailable when account cannot answer (down, overloaded,
    deadline passed): the outcome is then unknown and must be settled by key later.
    """

    async def create_settlement_account(
        self, *, owner_id: str, display_name: str, currency_code: str, creation_key: str
    ) -> str:
        """Create (once per key) the settlement account; return its id. Raises
        UnsupportedCurrency."""
        ...

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
        """Move money once per key; return the transfer id. Raises TransferRefused."""
        ...

    async def lookup_transfer(self, key: str) -> str | None:
        """The id of the transfer made with `key`, or None if it moved nothing."""
        ...


class MerchantRepository(Protocol):
    async def get(self, merchant_id: str) -> Merchant | None: ...
    async def get_by_creation_key(self, creation_key: str) -> Merchant | None: ...
    async def list_owned(self, owner_id: str, page: PageRequest) -> list[Merchant]:
        """Newest first; at most `page.size + 1`."""
        ...

    async def add(self, merchant: Merchant) -> None:
        """Raises DuplicateKey if the creation key is taken."""
        ...


class ApiKeyRepository(Protocol):
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def find_by_prefix(self, key_prefix: str) -> list[ApiKey]: ...
    async def list_for_merchant(self, merchant_id: str, page: PageRequest) -> list[ApiKey]:
        """Newest first; at most `page.size + 1`."""
        ...

    async def add(self, key: ApiKey) -> None: ...
    async def save(self, key: ApiKey) -> None: ...
    async def save_hash(self, key: ApiKey) -> None:
        """Store the key's new hash (a pepper rotation), nothing else."""
        ...


class PaymentRepository(Protocol):
    async def get(self, payment_id: str, *, lock: bool = False) -> Payment | None:
        """With `lock`, the row stays locked until the transaction ends."""
        ...

    async def get_by_creation_key(self, merchant_id: str, key: str) -> Payment | None: ...
    async def add(self, payment: Payment) -> None:
        """Raises DuplicateKey if (merchant, creation key) is taken."""
        ...

    async def save(self, payment: Payment, expected_version: int) -> bool:
        """Update if the stored version is still `expected_version`."""
        ...

    async def list_for_merchant(
        self, merchant_id: str, state: PaymentState | None, page: PageRequest
    ) -> list[Payment]:
        """Newest first; at most `page.size + 1`."""
        ...

    async def list_for_payer(self, payer_account_id: str, page: PageRequest) -> list[Payment]:
        """Payments the person approved or declined, newest first; at most `page.size + 1`."""
        ...

    async def interrupted_approvals(self, started_before: datetime) -> list[Payment]:
        """REQUIRES_APPROVAL payments whose approval started before the time."""
        ...

    async def overdue(self, now: datetime, limit: int) -> list[Payment]:
        """REQUIRES_APPROVAL payments past expiry with no approval under way."""
        ...


class RefundRepository(Protocol):
    async def get_by_key(self, payment_id: str, idempotency_key: str) -> Refund | None: ...
    async def pending_total(self, payment_id: str) -> int:
        """The sum of the payment's refunds not yet known to have succeeded."""
        ...

    async def add(self, refund: Refund) -> None: ...
    async def mark_succeeded(self, refund_id: str) -> None: ...
    async def delete(self, refund_id: str) -> None: ...
    async def interrupted(self, created_before: datetime) -> Sequence[Refund]:
        """Pending refunds created before the time."""
        ...


class MerchantUnitOfWork(Protocol):
    """The merchant service's repositories, bound to one transaction."""

    @property
    def merchants(self) -> MerchantRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def payments(self) -> PaymentRepository: ...
    @property
    def refunds(self) -> RefundRepository: ...

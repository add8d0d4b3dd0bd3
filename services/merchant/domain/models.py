"""The merchant service's data: merchants, API keys, payments and refunds."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

__all__ = [
    "ApiKey",
    "ApiKeyState",
    "Merchant",
    "MerchantState",
    "Payment",
    "PaymentState",
    "Refund",
]


class MerchantState(enum.Enum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class Merchant:
    id: str
    display_name: str
    owner_id: str
    currency_code: str
    settlement_account_id: str
    state: MerchantState
    create_time: datetime
    # `<owner>:<idempotency key>` of the CreateMerchant call that made it.
    creation_key: str


class ApiKeyState(enum.Enum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


@dataclass(frozen=True)
class ApiKey:
    id: str
    merchant_id: str
    display_name: str
    # Public: `sk_` and the secret's next 8 characters; finds the key without the secret.
    key_prefix: str
    # HMAC-SHA256 of the secret under the server's pepper; the secret itself is never kept.
    key_hash: str
    state: ApiKeyState
    create_time: datetime
    revoke_time: datetime | None = None


class PaymentState(enum.Enum):
    REQUIRES_APPROVAL = "REQUIRES_APPROVAL"
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"


PAID_STATES = frozenset(
    {PaymentState.SUCCEEDED, PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED}
)


@dataclass(frozen=True)
class Payment:
    id: str
    merchant_id: str
    settlement_account_id: str
    amount_minor: int
    currency_code: str
    description: str
    state: PaymentState
    create_time: datetime
    expire_time: datetime
    update_time: datetime
    creation_key: str
    payer_account_id: str = ""
    amount_refunded_minor: int = 0
    failure_reason: str = ""
    approve_time: datetime | None = None
    transfer_id: str = ""
    # Set when a person's approval began moving money; cleared only by recovery after the
    # ledger showed no transfer. While set, the payment is neither expired nor payable by
    # anyone else.
    approval_start_time: datetime | None = None
    version: int = 1

    def effective_state(self, now: datetime) -> PaymentState:
        """The state as callers see it: unpaid past its expiry reads as EXPIRED."""
        if (
            self.state is PaymentState.REQUIRES_APPROVAL
            and self.approval_start_time is None
            and now >= self.expire_time
        ):
            return PaymentState.EXPIRED
        return self.state

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.amount_refunded_minor

    def changed(self, now: datetime, **changes: object) -> Payment:
        """A copy with `changes`, the version bumped and update_time set."""
        return replace(self, **changes, version=self.version + 1, update_time=now)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Refund:
    id: str
    payment_id: str
    amount_minor: int
    currency_code: str
    reason: str
    idempotency_key: str
    # A PENDING refund has reserved its amount and may have moved money; recovery settles
    # it from the ledger. A refund that moved nothing is deleted, never kept as failed.
    succeeded: bool
    create_time: datetime

"""The merchant service's domain: merchants, API keys, payments and refunds.

Nothing here imports gRPC, protobuf or SQLAlchemy; the account service is reached through
the AccountGateway port.
"""

from .api_keys import ApiKeyPage, ApiKeys, IssuedKey, VerifiedKey
from .errors import (
    AccountServiceUnavailable,
    ApiKeyInvalid,
    ApiKeyNotFound,
    CurrencyMismatch,
    MerchantDisabled,
    MerchantNotFound,
    PaymentDeclined,
    PaymentNotFound,
    PaymentNotPayable,
    PaymentNotRefundable,
    RefundExceedsPayment,
    SettlementInsufficientFunds,
    UnsupportedCurrency,
)
from .merchants import MerchantPage, Merchants
from .models import ApiKey, ApiKeyState, Merchant, MerchantState, Payment, PaymentState, Refund
from .payments import NewPayment, PaymentPage, Payments, Viewer
from .ports import (
    AccountGateway,
    DuplicateKey,
    MerchantUnitOfWork,
    TransferRefused,
)
from .recovery import Recovery, RecoveryReport
from .refunds import Refunded, Refunds

__all__ = [
    "AccountGateway",
    "AccountServiceUnavailable",
    "ApiKey",
    "ApiKeyInvalid",
    "ApiKeyNotFound",
    "ApiKeyPage",
    "ApiKeyState",
    "ApiKeys",
    "CurrencyMismatch",
    "DuplicateKey",
    "IssuedKey",
    "Merchant",
    "MerchantDisabled",
    "MerchantNotFound",
    "MerchantPage",
    "MerchantState",
    "MerchantUnitOfWork",
    "Merchants",
    "NewPayment",
    "Payment",
    "PaymentDeclined",
    "PaymentNotFound",
    "PaymentNotPayable",
    "PaymentNotRefundable",
    "PaymentPage",
    "PaymentState",
    "Payments",
    "Recovery",
    "RecoveryReport",
    "Refund",
    "RefundExceedsPayment",
    "Refunded",
    "Refunds",
    "SettlementInsufficientFunds",
    "TransferRefused",
    "UnsupportedCurrency",
    "VerifiedKey",
    "Viewer",
]

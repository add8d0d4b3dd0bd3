"""Errors the merchant domain raises; the framework maps each to its gRPC status."""

from __future__ import annotations

from services.framework import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AccountServiceUnavailable",
    "ApiKeyInvalid",
    "ApiKeyNotFound",
    "CurrencyMismatch",
    "MerchantDisabled",
    "MerchantNotFound",
    "PaymentDeclined",
    "PaymentNotFound",
    "PaymentNotPayable",
    "PaymentNotRefundable",
    "RefundExceedsPayment",
    "SettlementInsufficientFunds",
    "UnsupportedCurrency",
]


class MerchantNotFound(NotFound):
    reason = "MERCHANT_NOT_FOUND"
    message = "no such merchant"


class MerchantDisabled(FailedPrecondition):
    reason = "MERCHANT_DISABLED"
    message = "the merchant is disabled"


class ApiKeyNotFound(NotFound):
    reason = "API_KEY_NOT_FOUND"
    message = "no such API key"


class ApiKeyInvalid(Unauthenticated):
    # One answer for unknown, malformed and revoked keys: nothing to probe.
    reason = "API_KEY_INVALID"
    message = "the API key is not valid"


class PaymentNotFound(NotFound):
    reason = "PAYMENT_NOT_FOUND"
    message = "no such payment"


class PaymentNotPayable(FailedPrecondition):
    reason = "PAYMENT_NOT_PAYABLE"
    message = "the payment is not waiting for approval"


class PaymentDeclined(FailedPrecondition):
    reason = "PAYMENT_DECLINED"
    message = "the wallet could not pay; the payment is declined"


class PaymentNotRefundable(FailedPrecondition):
    reason = "PAYMENT_NOT_REFUNDABLE"
    message = "only a succeeded payment can be refunded"


class RefundExceedsPayment(FailedPrecondition):
    reason = "REFUND_EXCEEDS_PAYMENT"
    message = "the refund is larger than what is left to refund"


class SettlementInsufficientFunds(FailedPrecondition):
    reason = "SETTLEMENT_INSUFFICIENT_FUNDS"
    message = "the settlement account's balance is below the refund"


class CurrencyMismatch(FailedPrecondition):
    reason = "CURRENCY_MISMATCH"
    message = "the amount's currency is not the merchant's currency"


class UnsupportedCurrency(InvalidArgument):
    reason = "UNSUPPORTED_CURRENCY"
    message = "this currency is not supported"


class AccountServiceUnavailable(Unavailable):
    reason = "ACCOUNT_SERVICE_UNAVAILABLE"
    message = "the account service cannot be reached; retry with the same idempotency key"

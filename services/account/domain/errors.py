"""Errors the account domain raises; the framework maps each to its gRPC status."""

from __future__ import annotations

from services.framework import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

__all__ = [
    "AccountNotActive",
    "AccountNotEmpty",
    "AccountNotFound",
    "BalanceLimitExceeded",
    "CurrencyMismatch",
    "EmailAlreadyExists",
    "EtagMismatch",
    "InsufficientFunds",
    "TransferNotFound",
    "UnsupportedCurrency",
]


class AccountNotFound(NotFound):
    reason = "ACCOUNT_NOT_FOUND"
    message = "no such account"


class EmailAlreadyExists(AlreadyExists):
    reason = "EMAIL_ALREADY_EXISTS"
    message = "a personal account with this email already exists"


class EtagMismatch(Aborted):
    reason = "ETAG_MISMATCH"
    message = "the account changed since it was read; read it again and retry"


class AccountNotEmpty(FailedPrecondition):
    reason = "ACCOUNT_NOT_EMPTY"
    message = "an account can only be closed with a zero balance"


class AccountNotActive(FailedPrecondition):
    reason = "ACCOUNT_NOT_ACTIVE"
    message = "the account is not active and moves no money"


class InsufficientFunds(FailedPrecondition):
    reason = "INSUFFICIENT_FUNDS"
    message = "the balance is below the amount"


class CurrencyMismatch(FailedPrecondition):
    reason = "CURRENCY_MISMATCH"
    message = "the amount's currency is not the account's currency"


class UnsupportedCurrency(InvalidArgument):
    reason = "UNSUPPORTED_CURRENCY"
    message = "this currency is not supported"


class BalanceLimitExceeded(FailedPrecondition):
    reason = "BALANCE_LIMIT_EXCEEDED"
    message = "the credit would take the balance past the largest allowed value"


class TransferNotFound(NotFound):
    reason = "TRANSFER_NOT_FOUND"
    message = "no transfer was made with this idempotency key"

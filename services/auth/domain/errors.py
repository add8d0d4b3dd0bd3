"""Errors the auth domain raises; the framework maps each to its gRPC status."""

from __future__ import annotations

from services.framework import (
    AlreadyExists,
    InvalidArgument,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AccountServiceUnavailable",
    "EmailAlreadyRegistered",
    "InvalidCredentials",
    "PasswordUnchanged",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "TooManyAttempts",
]


class EmailAlreadyRegistered(AlreadyExists):
    reason = "EMAIL_ALREADY_REGISTERED"
    message = "a person with this email is already registered"


class InvalidCredentials(Unauthenticated):
    reason = "INVALID_CREDENTIALS"
    message = "the email or the password is wrong"


class TooManyAttempts(ResourceExhausted):
    reason = "TOO_MANY_ATTEMPTS"
    message = "too many failed sign-ins; retry after the delay in RetryInfo"


class RefreshTokenInvalid(Unauthenticated):
    reason = "REFRESH_TOKEN_INVALID"
    message = "the refresh token is unknown, expired or revoked"


class RefreshTokenReused(Unauthenticated):
    reason = "REFRESH_TOKEN_REUSED"
    message = "the refresh token was already used; the session is now revoked"


class PasswordUnchanged(InvalidArgument):
    reason = "PASSWORD_UNCHANGED"
    message = "the new password equals the current one"


class AccountServiceUnavailable(Unavailable):
    reason = "ACCOUNT_SERVICE_UNAVAILABLE"
    message = "the account service could not be reached; retry to complete the sign-up"

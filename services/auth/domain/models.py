"""The auth service's data: credentials, refresh-token families and login throttles."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "Credential",
    "CredentialState",
    "RefreshToken",
    "SignedToken",
    "Throttle",
    "TokenFamily",
    "Tokens",
]


class CredentialState(enum.Enum):
    # Written before the account exists; see docs/auth.md for the registration protocol.
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class Credential:
    """A person's sign-in: keyed by the casefolded email, so emails are unique ignoring case."""

    email_key: str
    email: str
    state: CredentialState
    # `reg_…`: the idempotency key of account's CreateAccount, so every completion of this
    # registration (the retry, the sweep) gets the same account.
    registration_id: str
    password_hash: str
    # What CreateAccount is sent, kept so that a completion sends the very same request.
    display_name: str
    currency_code: str
    create_time: datetime
    update_time: datetime
    account_id: str = ""  # set once ACTIVE


@dataclass(frozen=True)
class TokenFamily:
    """One signed-in session: every refresh token rotated from one login."""

    id: str
    account_id: str
    create_time: datetime
    revoke_time: datetime | None = None


@dataclass(frozen=True)
class RefreshToken:
    """A refresh token as stored: only its SHA-256, never the token itself."""

    token_hash: str
    family_id: str
    account_id: str
    create_time: datetime
    expire_time: datetime
    used_time: datetime | None = None


@dataclass(frozen=True)
class Throttle:
    """Recent failed sign-ins for one key (an email or a client address)."""

    key: str
    failures: int
    last_failure_time: datetime
    locked_until: datetime | None = None


@dataclass(frozen=True)
class SignedToken:
    token: str
    expire_time: datetime


@dataclass(frozen=True)
class Tokens:
    """A session's pair, as Login, Refresh and ChangePassword return it."""

    access_token: str
    access_token_expire_time: datetime
    refresh_token: str
    refresh_token_expire_time: datetime

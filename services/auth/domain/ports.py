"""What the domain needs from the outside: storage, password hashing, token signing and
the account service. The adapters in `storage.py`, `passwords.py`, `keys.py` and
`account_client.py` implement these; the tests use in-memory fakes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from .models import Credential, RefreshToken, SignedToken, Throttle, TokenFamily

__all__ = [
    "AccessTokenSigner",
    "AccountDirectory",
    "AccountRequestRefused",
    "AccountsUnavailable",
    "AuthUnitOfWork",
    "CredentialRepository",
    "DuplicateKey",
    "EmailTaken",
    "PasswordHasher",
    "SessionRepository",
    "ThrottleRepository",
]


class DuplicateKey(Exception):
    """A unique constraint refused a write: a concurrent request created the same thing."""


class CredentialRepository(Protocol):
    async def get(self, email_key: str) -> Credential | None: ...

    async def get_by_account(self, account_id: str) -> Credential | None: ...

    async def add(self, credential: Credential) -> None:
        """Insert; raises DuplicateKey if the email key or registration id is taken."""
        ...

    async def activate(
        self, email_key: str, registration_id: str, account_id: str, now: datetime
    ) -> bool:
        """PENDING → ACTIVE for this registration; False if no such PENDING row remains."""
        ...

    async def delete_pending(self, email_key: str, registration_id: str) -> bool: ...

    async def set_password_hash(
        self, email_key: str, password_hash: str, now: datetime
    ) -> None: ...

    async def list_pending(self, created_before: datetime, limit: int) -> list[Credential]:
        """PENDING rows created before the time, oldest first."""
        ...


class SessionRepository(Protocol):
    async def add_family(self, family: TokenFamily) -> None: ...

    async def get_family(self, family_id: str) -> TokenFamily | None: ...

    async def revoke_family(self, family_id: str, now: datetime) -> None: ...

    async def revoke_account(self, account_id: str, now: datetime) -> int:
        """Revoke every live family of the account; returns how many."""
        ...

    async def add_token(self, token: RefreshToken) -> None: ...

    async def get_token(self, token_hash: str) -> RefreshToken | None: ...

    async def mark_used(self, token_hash: str, now: datetime) -> bool:
        """Mark an unused token used; False if it was used already (a concurrent refresh)."""
        ...

    async def delete_expired_tokens(self, expired_before: datetime, limit: int) -> list[str]:
        """Delete at most `limit` tokens that expired before the time; returns the family id
        of each one deleted (one entry per token, so repeats are possible)."""
        ...

    async def delete_empty_families(self, family_ids: Collection[str]) -> int:
        """Delete those of the families that have no token left; returns how many."""
        ...


class ThrottleRepository(Protocol):
    async def get_many(self, keys: Sequence[str]) -> dict[str, Throttle]: ...

    async def save(self, throttle: Throttle) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def delete_expired(self, failed_before: datetime, now: datetime, limit: int) -> int:
        """Delete at most `limit` throttles whose last failure is before `failed_before` and
        that are not locked at `now`; returns how many."""
        ...


class AuthUnitOfWork(Protocol):
    """The auth service's repositories, bound to one transaction."""

    @property
    def credentials(self) -> CredentialRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def throttles(self) -> ThrottleRepository: ...


class PasswordHasher(Protocol):
    """argon2id in production: slow on purpose, so these are coroutines run off the loop."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches. With `password_hash=None` it spends the same time
        against a dummy hash and returns False, so an unknown email is not faster."""
        ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class AccessTokenSigner(Protocol):
    def sign(self, subject: str, now: datetime) -> SignedToken:
        """A signed access token for `subject` (an account id), issued at `now`."""
        ...


class AccountsUnavailable(Exception):
    """The account service did not answer; whether it created the account is unknown."""


class EmailTaken(Exception):
    """The account service holds another account with this email (not ours: nothing made)."""


class AccountRequestRefused(Exception):
    """The account service refused the request as invalid; nothing was created."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field
        self.description = description


class AccountDirectory(Protocol):
    async def create_personal_account(self, credential: Credential) -> str:
        """Create (or, for the same registration id, find again) the person's account and
        return its id. Raises AccountsUnavailable, EmailTaken or AccountRequestRefused."""
        ...

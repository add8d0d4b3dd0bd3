"""The auth service's domain: credentials, registration, sessions, login throttling, retention.

Nothing here imports gRPC, protobuf, SQLAlchemy, argon2 or PyJWT: those live behind the
ports in `ports.py`, so these rules are tested in milliseconds with in-memory fakes.
"""

from .errors import (
    AccountServiceUnavailable,
    EmailAlreadyRegistered,
    InvalidCredentials,
    PasswordUnchanged,
    RefreshTokenInvalid,
    RefreshTokenReused,
    TooManyAttempts,
)
from .models import (
    Credential,
    CredentialState,
    RefreshToken,
    SignedToken,
    Throttle,
    TokenFamily,
    Tokens,
)
from .ports import (
    AccessTokenSigner,
    AccountDirectory,
    AccountRequestRefused,
    AccountsUnavailable,
    AuthUnitOfWork,
    CredentialRepository,
    DuplicateKey,
    EmailTaken,
    PasswordHasher,
    SessionRepository,
    ThrottleRepository,
)
from .registration import Registrations, email_key
from .retention import Retention
from .sessions import Sessions, hash_refresh_token
from .throttle import ThrottlePolicy

__all__ = [
    "AccessTokenSigner",
    "AccountDirectory",
    "AccountRequestRefused",
    "AccountServiceUnavailable",
    "AccountsUnavailable",
    "AuthUnitOfWork",
    "Credential",
    "CredentialRepository",
    "CredentialState",
    "DuplicateKey",
    "EmailAlreadyRegistered",
    "EmailTaken",
    "InvalidCredentials",
    "PasswordHasher",
    "PasswordUnchanged",
    "RefreshToken",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "Registrations",
    "Retention",
    "SessionRepository",
    "Sessions",
    "SignedToken",
    "Throttle",
    "ThrottlePolicy",
    "ThrottleRepository",
    "TokenFamily",
    "Tokens",
    "TooManyAttempts",
    "email_key",
    "hash_refresh_token",
]

"""The auth service's settings, read from PAYNOW_AUTH_* (see ServiceSettings)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy.engine import make_url

from services.framework import ConfigError, ServiceSettings

__all__ = ["AuthSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthSettings(ServiceSettings):
    """Settings of the auth service: the common ones plus its own (docs/auth.md)."""

    # The account service's gRPC address; defaults to 127.0.0.1:<its registry port>.
    account_addr: str
    # Access tokens: `iss` and `aud` claims, and their lifetime (a few minutes: they cannot
    # be revoked, only outlived).
    issuer: str = "paynow-auth"
    audience: str = "paynow"
    access_token_ttl_s: int = 300
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # Ed25519 PEM files; every one is published, the greatest file name signs. Empty means
    # `signing-keys/` beside the SQLite database (<PAYNOW_DATA_DIR>/signing-keys); required
    # with PostgreSQL, where keys are a mounted secret.
    signing_key_dir: str = ""
    # Generate a key when the directory is empty at start-up (development, `make run`).
    # Turn off where keys are a mounted secret: an empty mount must stop the service, not
    # give each replica a key of its own that the others do not publish.
    signing_key_autogenerate: bool = True
    signing_key_reload_s: float = 30.0
    # The wallet currency when Register gives none.
    default_currency: str = "EUR"
    # At most this many argon2id hashes at once (19 MiB each); the rest wait their turn.
    hash_concurrency: int = 4
    # Login throttling (see domain/throttle.py): failures allowed per email and per client
    # address before back-off, the first and the longest lock, and how long failures count.
    login_email_free_failures: int = 5
    login_address_free_failures: int = 20
    login_lock_base_s: float = 1.0
    login_lock_max_s: float = 120.0
    login_failure_window_s: float = 900.0
    # The registration sweep: how often it runs, and how old a PENDING sign-up must be.
    registration_sweep_interval_s: float = 60.0
    registration_sweep_after_s: float = 60.0
    # The retention purge (domain/retention.py): how often it runs, and how long a refresh
    # token is kept after it expired (a week, so an incident can still trace one presented
    # late to its session; refusing it needs no row).
    purge_interval_s: float = 3600.0
    refresh_token_retention_s: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = {
            "ACCESS_TOKEN_TTL_S": self.access_token_ttl_s,
            "REFRESH_TOKEN_TTL_S": self.refresh_token_ttl_s,
            "HASH_CONCURRENCY": self.hash_concurrency,
            "LOGIN_LOCK_BASE_S": self.login_lock_base_s,
            "LOGIN_LOCK_MAX_S": self.login_lock_max_s,
            "REGISTRATION_SWEEP_INTERVAL_S": self.registration_sweep_interval_s,
            "PURGE_INTERVAL_S": self.purge_interval_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"PAYNOW_AUTH_{name}: must be positive")
        if self.refresh_token_retention_s < 0:
            raise ConfigError("PAYNOW_AUTH_REFRESH_TOKEN_RETENTION_S: must not be negative")
        self.signing_key_path  # noqa: B018 - raises ConfigError now rather than at start-up
        code = self.default_currency
        if len(code) != 3 or not code.isalpha() or not code.isupper():
            raise ConfigError("PAYNOW_AUTH_DEFAULT_CURRENCY: expected an ISO 4217 code like EUR")

    @property
    def signing_key_path(self) -> Path:
        """The signing-key directory, with the SQLite default applied."""
        if self.signing_key_dir:
            return Path(self.signing_key_dir)
        url = make_url(self.database_url.reveal())
        if url.get_backend_name() != "sqlite" or not url.database:
            raise ConfigError("PAYNOW_AUTH_SIGNING_KEY_DIR: required unless the database is SQLite")
        return Path(url.database).parent / "signing-keys"

"""Composition root of the auth service: settings → database → servicers → app.

The only module that wires things together; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paynow.account.v1.account_service_pb2_grpc import AccountServiceStub
from paynow.auth.v1 import auth_service_pb2, auth_service_pb2_grpc, errors_pb2
from services.framework import (
    ConfigError,
    Database,
    ServiceApp,
    SqlUnitOfWorkRunner,
    connect,
    load_settings,
)

from .account_client import GrpcAccountDirectory
from .config import AuthSettings
from .domain import Registrations, Retention, Sessions, ThrottlePolicy
from .keys import JwtSigner, KeyRing, ensure_signing_key
from .passwords import Argon2Passwords
from .storage import SqlAuthUnitOfWork
from .transport import AuthServicer

__all__ = ["MIGRATIONS", "AuthService", "build", "main", "wire"]

# Beside this file, not relative to the working directory, so the service starts from anywhere.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class AuthService:
    """The wired service: the app to serve, and the parts tests and operators reach into."""

    app: ServiceApp
    registrations: Registrations
    keys: KeyRing
    sweep_after: timedelta
    retention: Retention

    async def sweep(self) -> int:
        """Run the registration sweep once now (what the background job does)."""
        return await self.registrations.sweep(self.sweep_after)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build(settings: AuthSettings) -> ServiceApp:
    """Wire the auth service from its settings (see `wire`)."""
    return wire(settings).app


def wire(settings: AuthSettings, *, clock: Callable[[], datetime] = _utc_now) -> AuthService:
    """Wire the auth service from its settings. Reads the signing keys (generating one when
    allowed and there is none; FileNotFoundError otherwise); opens nothing else yet."""
    database = Database(settings.database_url.reveal(), service=settings.service)
    uow = SqlUnitOfWorkRunner(database, SqlAuthUnitOfWork)
    ensure_signing_key(settings.signing_key_path, autogenerate=settings.signing_key_autogenerate)
    keys = KeyRing(settings.signing_key_path, reload_interval_s=settings.signing_key_reload_s)
    hasher = Argon2Passwords(concurrency=settings.hash_concurrency)
    accounts = GrpcAccountDirectory(
        lambda: connect(settings.account_addr, AccountServiceStub, settings=settings)
    )
    registrations = Registrations(
        uow, hasher, accounts, default_currency=settings.default_currency, clock=clock
    )

    def policy(free_failures: int) -> ThrottlePolicy:
        return ThrottlePolicy(
            free_failures=free_failures,
            base_delay_s=settings.login_lock_base_s,
            max_delay_s=settings.login_lock_max_s,
            window_s=settings.login_failure_window_s,
        )

    email_policy = policy(settings.login_email_free_failures)
    address_policy = policy(settings.login_address_free_failures)
    sessions = Sessions(
        uow,
        hasher,
        JwtSigner(
            keys,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=timedelta(seconds=settings.access_token_ttl_s),
        ),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_s),
        email_policy=email_policy,
        address_policy=address_policy,
        clock=clock,
    )
    retention = Retention(
        uow,
        token_retention=timedelta(seconds=settings.refresh_token_retention_s),
        throttle_policies=[email_policy, address_policy],
        clock=clock,
    )
    app = ServiceApp(
        settings,
        domain="paynow.auth",
        error_reasons=errors_pb2.ErrorReason.DESCRIPTOR,
        database=database,
        migrations=str(MIGRATIONS),
    )
    app.add_service(
        AuthServicer(registrations, sessions, keys.jwks),
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
        auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
    )
    service = AuthService(
        app,
        registrations,
        keys,
        timedelta(seconds=settings.registration_sweep_after_s),
        retention,
    )
    # Finishes sign-ups interrupted between the two databases (registration.py).
    app.add_background_job(
        "registration-sweep", service.sweep, interval_s=settings.registration_sweep_interval_s
    )
    # Keeps the token and throttle tables from growing forever (domain/retention.py).
    app.add_background_job("retention-purge", retention.purge, interval_s=settings.purge_interval_s)
    return service


def main() -> None:
    """Load the settings from the environment and serve until SIGTERM or Ctrl-C."""
    try:
        settings = load_settings(AuthSettings, "auth")
        app = build(settings)
    except (ConfigError, FileNotFoundError) as error:
        sys.exit(f"auth: {error}")  # a wrong variable deserves one line, not a traceback
    asyncio.run(app.serve())

"""The real providers, in process: account, merchant and auth as `make run` wires them.

Each has its own SQLite database under `directory`; all share one internal token; merchant
and auth call account at its address.
"""

from __future__ import annotations

import contextlib
import importlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from services.account.app import build as build_account
from services.account.config import AccountSettings
from services.auth.app import build as build_auth
from services.auth.config import AuthSettings
from services.framework import Secret, ServiceSettings, load_registry
from services.framework.testing import serve_in_process
from services.merchant.app import build as build_merchant
from services.merchant.config import MerchantSettings

from ._replay import Providers

__all__ = ["provider_stack"]


def _common(service: str, directory: Path, token: Secret) -> dict[str, object]:
    return {
        "service": service,
        "port": 0,
        "database_url": Secret(f"sqlite+aiosqlite:///{directory}/{service}/{service}.db"),
        "internal_token": token,
        "grace_period_s": 1.0,
        "log_format": "json",
    }


@asynccontextmanager
async def provider_stack(directory: Path) -> AsyncIterator[Providers]:
    """Start account, then merchant and auth pointing at it; yield where they listen."""
    token = Secret(secrets.token_urlsafe(32))
    account_settings = AccountSettings(**_common("account", directory, token))  # type: ignore[arg-type]
    async with serve_in_process(build_account(account_settings)) as account:
        merchant_settings = MerchantSettings(
            **_common("merchant", directory, token),  # type: ignore[arg-type]
            account_addr=account.address,
            api_key_pepper=Secret(secrets.token_urlsafe(24)),
            # WatchPayment re-reads the payment this often: small, so streams end quickly.
            watch_interval_ms=20,
        )
        auth_settings = AuthSettings(
            **_common("auth", directory, token),  # type: ignore[arg-type]
            account_addr=account.address,
            signing_key_dir=str(directory / "auth" / "signing-keys"),
            # Examples sign in with wrong passwords on purpose; never throttle the suite.
            login_address_free_failures=10_000,
        )
        async with (
            serve_in_process(build_merchant(merchant_settings)) as merchant,
            serve_in_process(build_auth(auth_settings)) as auth,
            contextlib.AsyncExitStack() as others,
        ):
            addresses = {
                "account": account.address,
                "merchant": merchant.address,
                "auth": auth.address,
            }
            urls = {
                "account": account_settings.database_url.reveal(),
                "merchant": merchant_settings.database_url.reveal(),
                "auth": auth_settings.database_url.reveal(),
            }
            # Any other gRPC service in the registry (one a team added with the scaffold)
            # starts the same way, from its own app and settings classes.
            for name in _other_services(set(addresses)):
                settings = _settings_of(name, directory, token, addresses)
                server = await others.enter_async_context(
                    serve_in_process(
                        importlib.import_module(f"services.{name}.app").build(settings)
                    )
                )
                addresses[name] = server.address
                urls[name] = settings.database_url.reveal()
            providers = Providers(addresses, token.reveal(), urls)
            try:
                yield providers
            finally:
                await providers.close()


def _other_services(started: set[str]) -> list[str]:
    registry = load_registry()
    return [
        name
        for name in registry.start_order()
        if name not in started and registry.entry(name).grpc_services
    ]


def _settings_of(
    name: str, directory: Path, token: Secret, addresses: dict[str, str]
) -> ServiceSettings:
    config = importlib.import_module(f"services.{name}.config")
    settings_class = getattr(config, f"{name.title().replace('_', '')}Settings")
    calls = {f"{callee}_addr": addresses[callee] for callee in load_registry().entry(name).calls}
    settings: ServiceSettings = settings_class(**_common(name, directory, token), **calls)
    return settings

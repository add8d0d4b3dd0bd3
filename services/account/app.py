"""Composition root of the account service: settings → database → servicers → app.

The only module that wires things together; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc, errors_pb2
from services.framework import (
    ConfigError,
    Database,
    ServiceApp,
    SqlUnitOfWorkRunner,
    load_settings,
)

from .config import AccountSettings
from .domain import Accounts, Ledger
from .storage import SqlAccountUnitOfWork
from .transport import AccountServicer

__all__ = ["MIGRATIONS", "build", "main"]

# Beside this file, not relative to the working directory, so the service starts from anywhere.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build(settings: AccountSettings) -> ServiceApp:
    """Wire the account service from its settings (nothing is started or opened yet)."""
    # Rows that move money are locked explicitly, in a fixed order, and idempotency rests on
    # unique indexes: READ COMMITTED makes contenders wait instead of abort (framework docs).
    database = Database(
        settings.database_url.reveal(), service=settings.service, isolation="READ COMMITTED"
    )
    uow = SqlUnitOfWorkRunner(database, SqlAccountUnitOfWork)
    clock = _utc_now
    accounts = Accounts(uow, currencies=settings.currency_codes, clock=clock)
    ledger = Ledger(uow, accounts, clock=clock)
    app = ServiceApp(
        settings,
        domain="paynow.account",
        error_reasons=errors_pb2.ErrorReason.DESCRIPTOR,
        database=database,
        migrations=str(MIGRATIONS),
    )
    app.add_service(
        AccountServicer(accounts, ledger),
        account_service_pb2_grpc.add_AccountServiceServicer_to_server,
        account_service_pb2.DESCRIPTOR.services_by_name["AccountService"],
    )
    return app


def _utc_now() -> datetime:
    return datetime.now(UTC)


def main() -> None:
    """Load the settings from the environment and serve until SIGTERM or Ctrl-C."""
    try:
        settings = load_settings(AccountSettings, "account")
    except ConfigError as error:
        sys.exit(f"account: {error}")  # a wrong variable deserves one line, not a traceback
    asyncio.run(build(settings).serve())

"""Composition root of the merchant service: settings → database → servicers → app.

The only module that wires things together; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paynow.merchant.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    errors_pb2,
    merchant_service_pb2,
    merchant_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
)
from services.framework import (
    ConfigError,
    Database,
    ServiceApp,
    SqlUnitOfWorkRunner,
    load_settings,
    local_secret,
)

from .account_gateway import GrpcAccountGateway
from .config import MerchantSettings
from .domain import ApiKeys, Merchants, Payments, Recovery, Refunds
from .storage import SqlMerchantUnitOfWork
from .transport import ApiKeyServicer, MerchantServicer, PaymentServicer

__all__ = ["MIGRATIONS", "build", "main"]

# Beside this file, not relative to the working directory, so the service starts from anywhere.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build(settings: MerchantSettings) -> ServiceApp:
    """Wire the merchant service from its settings (nothing is started or opened yet)."""
    # Rows that move money are locked explicitly, in a fixed order, and idempotency rests on
    # unique indexes: READ COMMITTED makes contenders wait instead of abort (framework docs).
    database = Database(
        settings.database_url.reveal(), service=settings.service, isolation="READ COMMITTED"
    )
    uow = SqlUnitOfWorkRunner(database, SqlMerchantUnitOfWork)
    accounts = GrpcAccountGateway(settings.account_addr, settings)
    clock = _utc_now
    pepper = settings.api_key_pepper or local_secret("merchant-api-key-pepper")
    merchants = Merchants(uow, accounts, clock=clock)
    previous = settings.api_key_pepper_previous
    api_keys = ApiKeys(
        uow,
        pepper=pepper.reveal().encode(),
        previous_pepper=previous.reveal().encode() if previous else None,
        clock=clock,
    )
    payments = Payments(
        uow,
        accounts,
        clock=clock,
        payment_ttl=timedelta(seconds=settings.payment_ttl_s),
        watch_interval_s=settings.watch_interval_ms / 1000,
    )
    refunds = Refunds(uow, accounts, clock=clock)
    recovery = Recovery(
        uow, accounts, clock=clock, stale_after=timedelta(seconds=settings.recovery_stale_after_s)
    )
    app = ServiceApp(
        settings,
        domain="paynow.merchant",
        error_reasons=errors_pb2.ErrorReason.DESCRIPTOR,
        database=database,
        migrations=str(MIGRATIONS),
    )
    app.add_service(
        MerchantServicer(merchants),
        merchant_service_pb2_grpc.add_MerchantServiceServicer_to_server,
        merchant_service_pb2.DESCRIPTOR.services_by_name["MerchantService"],
    )
    app.add_service(
        PaymentServicer(payments, refunds),
        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server,
        payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"],
    )
    app.add_service(
        ApiKeyServicer(api_keys),
        api_key_service_pb2_grpc.add_ApiKeyServiceServicer_to_server,
        api_key_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"],
    )
    # At start-up and then periodically: a crash or an account outage must not leave a
    # payment or refund unsettled for longer than this.
    app.add_background_job(
        "payment-recovery", recovery.run, interval_s=settings.recovery_interval_s
    )
    return app


def _utc_now() -> datetime:
    return datetime.now(UTC)


def main() -> None:
    """Load the settings from the environment and serve until SIGTERM or Ctrl-C."""
    try:
        settings = load_settings(MerchantSettings, "merchant")
    except ConfigError as error:
        sys.exit(f"merchant: {error}")  # a wrong variable deserves one line, not a traceback
    asyncio.run(build(settings).serve())

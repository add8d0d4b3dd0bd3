"""Composition root of the merchant service: settings → database → servicers → app.

The only module that wires things together; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import sys
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
from services.framework import ConfigError, Database, ServiceApp, load_settings

from .config import MerchantSettings
from .transport import ApiKeyServicer, MerchantServicer, PaymentServicer

__all__ = ["MIGRATIONS", "build", "main"]

# Beside this file, not relative to the working directory, so the service starts from anywhere.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build(settings: MerchantSettings) -> ServiceApp:
    """Wire the merchant service from its settings (nothing is started or opened yet)."""
    database = Database(settings.database_url.reveal(), service=settings.service)
    # Servicers are abstract in the stubs until every method is written (ignore[abstract]);
    # meanwhile the generated base answers the missing methods.
    app = ServiceApp(
        settings,
        domain="paynow.merchant",
        error_reasons=errors_pb2.ErrorReason.DESCRIPTOR,
        database=database,
        migrations=str(MIGRATIONS),
    )
    app.add_service(
        MerchantServicer(),  # type: ignore[abstract]
        merchant_service_pb2_grpc.add_MerchantServiceServicer_to_server,
        merchant_service_pb2.DESCRIPTOR.services_by_name["MerchantService"],
    )
    app.add_service(
        PaymentServicer(),  # type: ignore[abstract]
        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server,
        payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"],
    )
    app.add_service(
        ApiKeyServicer(),  # type: ignore[abstract]
        api_key_service_pb2_grpc.add_ApiKeyServiceServicer_to_server,
        api_key_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"],
    )
    return app


def main() -> None:
    """Load the settings from the environment and serve until SIGTERM or Ctrl-C."""
    try:
        settings = load_settings(MerchantSettings, "merchant")
    except ConfigError as error:
        sys.exit(f"merchant: {error}")  # a wrong variable deserves one line, not a traceback
    asyncio.run(build(settings).serve())

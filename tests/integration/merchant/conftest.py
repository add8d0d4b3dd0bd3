"""Real account and merchant servers on 127.0.0.1:0, on SQLite and on PostgreSQL.

Merchant reaches account over gRPC with a shared internal token, exactly as in `make run`;
each has its own database on the parametrized backend.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paynow.account.v1 import account_service_pb2
from paynow.merchant.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    merchant_pb2,
    merchant_service_pb2,
    merchant_service_pb2_grpc,
    payment_pb2,
    payment_service_pb2,
    payment_service_pb2_grpc,
)
from services.account.app import build as build_account
from services.account.config import AccountSettings
from services.framework import Secret, new_id
from services.framework.testing import InProcessServer, caller_metadata, serve_in_process
from services.merchant.app import build as build_merchant
from services.merchant.config import MerchantSettings
from tests.integration.account.harness import AccountHarness


@dataclass
class Stubs:
    merchants: merchant_service_pb2_grpc.MerchantServiceStub
    keys: api_key_service_pb2_grpc.ApiKeyServiceStub
    payments: payment_service_pb2_grpc.PaymentServiceStub


@dataclass
class Shop:
    """A merchant with an owner, created through the API."""

    owner_id: str
    merchant: merchant_pb2.Merchant


@dataclass
class MerchantHarness:
    account: AccountHarness
    server: InProcessServer
    settings: MerchantSettings

    def _stubs(self, metadata: tuple[tuple[str, str], ...]) -> Stubs:
        return Stubs(
            self.server.stub(merchant_service_pb2_grpc.MerchantServiceStub, metadata),
            self.server.stub(api_key_service_pb2_grpc.ApiKeyServiceStub, metadata),
            self.server.stub(payment_service_pb2_grpc.PaymentServiceStub, metadata),
        )

    def as_user(self, user_id: str) -> Stubs:
        return self._stubs(caller_metadata(self.settings, service="edge", user_id=user_id))

    def as_merchant(self, merchant_id: str) -> Stubs:
        return self._stubs(caller_metadata(self.settings, service="edge", merchant_id=merchant_id))

    def as_edge(self) -> Stubs:
        return self._stubs(caller_metadata(self.settings, service="edge"))

    async def shop(self, currency: str = "EUR") -> Shop:
        owner = await self.account.person(currency)
        merchant = await self.as_user(owner.id).merchants.CreateMerchant(
            merchant_service_pb2.CreateMerchantRequest(
                merchant=merchant_pb2.Merchant(display_name="Tea shop", currency_code=currency),
                idempotency_key=new_id("key"),
            )
        )
        return Shop(owner.id, merchant)

    async def payment(self, shop: Shop, amount_minor: int) -> payment_pb2.Payment:
        return await self.as_merchant(shop.merchant.id).payments.CreatePayment(
            payment_service_pb2.CreatePaymentRequest(
                amount_minor=amount_minor,
                currency_code=shop.merchant.currency_code,
                description="green tea",
                idempotency_key=new_id("ord"),
            )
        )

    async def approve(self, user_id: str, payment_id: str) -> payment_pb2.Payment:
        return await self.as_user(user_id).payments.ApprovePayment(
            payment_service_pb2.ApprovePaymentRequest(id=payment_id, idempotency_key=new_id("apr"))
        )

    async def balance(self, account_id: str, owner_id: str | None = None) -> int:
        """An account's balance, read as its owner (a wallet owns itself)."""
        got = await self.account.as_user(owner_id or account_id).GetAccount(
            account_service_pb2.GetAccountRequest(id=account_id)
        )
        return int(got.balance_minor)

    async def api_key(self, shop: Shop) -> str:
        issued = await self.as_user(shop.owner_id).keys.CreateApiKey(
            api_key_service_pb2.CreateApiKeyRequest(
                merchant_id=shop.merchant.id, display_name="production"
            )
        )
        return str(issued.secret)


def merchant_settings(
    account: AccountHarness, database_url: str, data_dir: Path
) -> MerchantSettings:
    return MerchantSettings(
        service="merchant",
        port=0,
        database_url=Secret(database_url),
        internal_token=account.settings.internal_token,
        account_addr=account.server.address,
        api_key_pepper=Secret(secrets.token_urlsafe(24)),
        grace_period_s=2.0,
        log_format="json",
        watch_interval_ms=20,
    )


@pytest.fixture
async def account(second_database_url: str) -> AsyncIterator[AccountHarness]:
    settings = AccountSettings(
        service="account",
        port=0,
        database_url=Secret(second_database_url),
        internal_token=Secret(secrets.token_urlsafe(32)),
        grace_period_s=2.0,
        log_format="json",
    )
    async with serve_in_process(build_account(settings)) as server:
        harness = AccountHarness(server, settings, second_database_url)
        yield harness
        await harness.assert_ledger_balanced()


@pytest.fixture
async def merchant(
    account: AccountHarness, database_url: str, tmp_path: Path
) -> AsyncIterator[MerchantHarness]:
    settings = merchant_settings(account, database_url, tmp_path)
    async with serve_in_process(build_merchant(settings)) as server:
        yield MerchantHarness(account, server, settings)

"""AccountHarness: a real account server and helpers to act on it as a user or a service."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.account.config import AccountSettings
from services.framework import Database, new_id
from services.framework.testing import InProcessServer, caller_metadata


@dataclass
class AccountHarness:
    server: InProcessServer
    settings: AccountSettings
    database_url: str

    def as_user(self, user_id: str) -> account_service_pb2_grpc.AccountServiceStub:
        return self.server.stub(
            account_service_pb2_grpc.AccountServiceStub,
            caller_metadata(self.settings, service="edge", user_id=user_id),
        )

    def as_service(self, service: str = "merchant") -> account_service_pb2_grpc.AccountServiceStub:
        return self.server.stub(
            account_service_pb2_grpc.AccountServiceStub,
            caller_metadata(self.settings, service=service),
        )

    async def person(self, currency: str = "EUR", deposit_minor: int = 0) -> account_pb2.Account:
        """A new personal account, optionally topped up."""
        account = await self.as_service("auth").CreateAccount(
            account_service_pb2.CreateAccountRequest(
                kind=account_pb2.ACCOUNT_KIND_PERSONAL,
                email=f"{new_id('usr')}@example.com",
                display_name="Test Person",
                currency_code=currency,
                idempotency_key=new_id("reg"),
            )
        )
        if deposit_minor:
            deposited = await self.as_user(account.id).Deposit(
                account_service_pb2.DepositRequest(
                    id=account.id,
                    amount_minor=deposit_minor,
                    currency_code=currency,
                    idempotency_key=new_id("dep"),
                )
            )
            return deposited.account
        return account

    async def assert_ledger_balanced(self) -> None:
        """Every balance equals its entries' sum, and all balances sum to zero."""
        database = Database(self.database_url, service="audit")
        try:
            async with database.transaction(readonly=True) as session:
                mismatched = (
                    await session.execute(
                        text(
                            "SELECT a.id FROM accounts a LEFT JOIN ledger_entries e"
                            " ON e.account_id = a.id GROUP BY a.id, a.balance_minor"
                            " HAVING a.balance_minor <> COALESCE(SUM(e.amount_minor), 0)"
                        )
                    )
                ).all()
                total = (
                    await session.execute(
                        text("SELECT COALESCE(SUM(balance_minor), 0) FROM accounts")
                    )
                ).scalar_one()
                negative = (
                    await session.execute(
                        text(
                            "SELECT COUNT(*) FROM accounts"
                            " WHERE balance_minor < 0 AND kind <> 'EXTERNAL_FUNDING'"
                        )
                    )
                ).scalar_one()
        finally:
            await database.dispose()
        assert mismatched == []
        assert total == 0
        assert negative == 0

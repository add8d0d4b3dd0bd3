"""Auth's GrpcAccountDirectory against a stub account built from auth-account.json.

The provider verification replays the same file against the real account service, so
the answers auth is tested with here are the ones account is held to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from paynow.account.v1.account_service_pb2_grpc import AccountServiceStub
from services.auth.account_client import GrpcAccountDirectory
from services.auth.domain import AccountRequestRefused, Credential, CredentialState, EmailTaken
from services.framework import close_channels, connect, is_id
from services.framework.testing import make_settings
from tests.contracts.exchange import CONSUMERS_DIR, load_contract, serve_stub

CONTRACT = load_contract(CONSUMERS_DIR / "auth-account.json")


@pytest.fixture(autouse=True)
async def _close_channels() -> AsyncIterator[None]:
    yield
    await close_channels()


def directory(address: str) -> GrpcAccountDirectory:
    settings = make_settings("auth")
    return GrpcAccountDirectory(lambda: connect(address, AccountServiceStub, settings=settings))


def pending(currency_code: str = "EUR") -> Credential:
    now = datetime.now(UTC)
    return Credential(
        email_key="ada@example.com",
        email="ada@example.com",
        state=CredentialState.PENDING,
        registration_id="reg_0123",
        password_hash="not-a-real-hash",
        display_name="Ada Lovelace",
        currency_code=currency_code,
        create_time=now,
        update_time=now,
    )


async def test_create_personal_account_returns_the_wallet_id_account_sends() -> None:
    """A registration is completed with the id account gives the new wallet."""
    async with serve_stub(CONTRACT, "a wallet for a new registration") as stub:
        account_id = await directory(stub.address).create_personal_account(pending())
    assert is_id(account_id, "acc")


async def test_create_personal_account_reports_an_email_account_already_holds() -> None:
    """EMAIL_ALREADY_EXISTS becomes EmailTaken, which frees the registration."""
    async with serve_stub(CONTRACT, "an email that already has a wallet") as stub:
        with pytest.raises(EmailTaken):
            await directory(stub.address).create_personal_account(pending())


async def test_create_personal_account_reports_a_refused_request_without_violations() -> None:
    """INVALID_ARGUMENT without a field violation is blamed on the currency."""
    async with serve_stub(CONTRACT, "a currency account does not hold") as stub:
        with pytest.raises(AccountRequestRefused) as refused:
            await directory(stub.address).create_personal_account(pending("XTS"))
    assert refused.value.field == "currency_code"


async def test_create_personal_account_reports_the_first_violated_field() -> None:
    """INVALID_ARGUMENT with field violations names the first violated field."""
    async with serve_stub(CONTRACT, "a request account's rules refuse") as stub:
        with pytest.raises(AccountRequestRefused) as refused:
            await directory(stub.address).create_personal_account(pending("eur"))
    assert refused.value.field == "currency_code"

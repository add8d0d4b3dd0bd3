"""Merchant's GrpcAccountGateway against a stub account built from merchant-account.json.

The stub answers only what the contract lists, and the provider verification replays the
same file against the real account service: what merchant is tested with here is what
account is held to there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.framework import close_channels, is_id
from services.framework.testing import make_settings
from services.merchant.account_gateway import GrpcAccountGateway
from services.merchant.domain import TransferRefused, UnsupportedCurrency
from tests.contracts.exchange import CONSUMERS_DIR, load_contract, serve_stub

CONTRACT = load_contract(CONSUMERS_DIR / "merchant-account.json")
PAYER = "acc_" + "1" * 26
SETTLEMENT = "acc_" + "2" * 26
OWNER = "acc_" + "3" * 26
STRANGER = "acc_" + "0" * 18 + "stranger"


@pytest.fixture(autouse=True)
async def _close_channels() -> AsyncIterator[None]:
    yield
    await close_channels()


def gateway(address: str) -> GrpcAccountGateway:
    return GrpcAccountGateway(address, make_settings("merchant"))


async def transfer(gateway: GrpcAccountGateway, from_account_id: str = PAYER) -> str:
    return await gateway.transfer(
        from_account_id=from_account_id,
        to_account_id=SETTLEMENT,
        amount_minor=1250,
        currency_code="EUR",
        memo="payment pay_0123",
        key="pay_0123",
    )


async def test_transfer_returns_the_transfer_id_account_sends() -> None:
    """A moved payment is known by the transfer id in account's answer."""
    async with serve_stub(CONTRACT, "a payment's transfer") as stub:
        transfer_id = await transfer(gateway(stub.address))
    assert is_id(transfer_id, "trf")


@pytest.mark.parametrize(
    ("interaction", "from_account_id", "reason"),
    [
        ("a payer without enough money", PAYER, "INSUFFICIENT_FUNDS"),
        ("a payer whose wallet holds another currency", PAYER, "CURRENCY_MISMATCH"),
        ("a payer whose wallet is closed", PAYER, "ACCOUNT_NOT_ACTIVE"),
        ("a payer account that does not exist", STRANGER, "ACCOUNT_NOT_FOUND"),
    ],
)
async def test_transfer_turns_account_refusals_into_transfer_refused(
    interaction: str, from_account_id: str, reason: str
) -> None:
    """Each refusal account may answer becomes TransferRefused with account's reason."""
    async with serve_stub(CONTRACT, interaction) as stub:
        with pytest.raises(TransferRefused) as refused:
            await transfer(gateway(stub.address), from_account_id)
    assert refused.value.reason == reason


async def test_transfer_asks_again_while_an_earlier_attempt_holds_the_key() -> None:
    """REQUEST_IN_PROGRESS is waited out, and the transfer then completes."""
    async with serve_stub(
        CONTRACT,
        "a transfer whose key an earlier attempt still holds",
        "a payment's transfer",
        in_order=True,
    ) as stub:
        transfer_id = await transfer(gateway(stub.address))
    assert stub.answered == [
        "a transfer whose key an earlier attempt still holds",
        "a payment's transfer",
    ]
    assert is_id(transfer_id, "trf")


async def test_lookup_transfer_returns_the_id_of_the_transfer_a_key_made() -> None:
    """Recovery learns which transfer a payment's key made."""
    async with serve_stub(CONTRACT, "recovery finds the transfer a payment made") as stub:
        transfer_id = await gateway(stub.address).lookup_transfer("pay_0123")
    assert transfer_id is not None
    assert is_id(transfer_id, "trf")


async def test_lookup_transfer_returns_none_when_the_key_moved_nothing() -> None:
    """TRANSFER_NOT_FOUND means no money moved, which recovery needs to know for sure."""
    async with serve_stub(CONTRACT, "recovery learns a payment moved no money") as stub:
        assert await gateway(stub.address).lookup_transfer("pay_0123") is None


async def test_create_settlement_account_returns_the_new_account_id() -> None:
    """A merchant's settlement account is known by the id account sends."""
    async with serve_stub(CONTRACT, "a settlement account for a new merchant") as stub:
        account_id = await gateway(stub.address).create_settlement_account(
            owner_id=OWNER, display_name="Tea shop", currency_code="EUR", creation_key="mer_key"
        )
    assert is_id(account_id, "acc")


async def test_create_settlement_account_refuses_a_currency_account_does_not_hold() -> None:
    """UNSUPPORTED_CURRENCY becomes merchant's own UnsupportedCurrency."""
    async with serve_stub(
        CONTRACT, "a settlement account in a currency PayNow does not hold"
    ) as stub:
        with pytest.raises(UnsupportedCurrency):
            await gateway(stub.address).create_settlement_account(
                owner_id=OWNER, display_name="Tea shop", currency_code="XTS", creation_key="k"
            )

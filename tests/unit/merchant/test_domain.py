"""The merchant domain's rules over in-memory fakes: expiry, outages and recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.framework import new_id
from services.merchant.domain import (
    AccountServiceUnavailable,
    ApiKeyInvalid,
    ApiKeys,
    Merchants,
    NewPayment,
    PaymentDeclined,
    PaymentNotPayable,
    Payments,
    PaymentState,
    Recovery,
    Refunds,
    SettlementInsufficientFunds,
)

from .fakes import FakeAccounts, InMemoryStore

PAYER = "acc_" + "p" * 26


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.store = InMemoryStore()
        self.accounts = FakeAccounts()
        self.merchants = Merchants(self.store, self.accounts, clock=self.clock)
        self.payments = Payments(
            self.store, self.accounts, clock=self.clock, payment_ttl=timedelta(minutes=15)
        )
        self.refunds = Refunds(self.store, self.accounts, clock=self.clock)
        self.recovery = Recovery(
            self.store, self.accounts, clock=self.clock, stale_after=timedelta(seconds=60)
        )
        self.keys = ApiKeys(self.store, pepper=b"p" * 32, clock=self.clock)

    async def payment(self, amount: int = 100) -> str:
        shop = await self.merchants.create("acc_" + "o" * 26, "Shop", "EUR", new_id("key"))
        self.settlement = shop.settlement_account_id
        created = await self.payments.create(
            shop.id, NewPayment(amount, "EUR", "tea", new_id("ord"))
        )
        self.merchant_id = shop.id
        return created.id


@pytest.fixture
def world() -> World:
    world = World()
    world.accounts.balances[PAYER] = 1_000
    return world


async def test_an_unpaid_payment_expires_and_cannot_be_approved(world: World) -> None:
    """Past its expiry a payment reads as EXPIRED and approving it is PAYMENT_NOT_PAYABLE."""
    payment_id = await world.payment()
    world.clock.advance(15 * 60)
    with pytest.raises(PaymentNotPayable):
        await world.payments.approve(PAYER, payment_id)
    report = await world.recovery.run()
    assert report.expired == 1
    assert world.store.tables.payments[payment_id].state is PaymentState.EXPIRED


async def test_an_outage_leaves_the_payment_payable_by_retry(world: World) -> None:
    """With account down, approval fails UNAVAILABLE; the same person's retry completes it."""
    payment_id = await world.payment()
    world.accounts.down = True
    with pytest.raises(AccountServiceUnavailable):
        await world.payments.approve(PAYER, payment_id)
    world.accounts.down = False
    paid = await world.payments.approve(PAYER, payment_id)
    assert paid.state is PaymentState.SUCCEEDED
    assert world.accounts.balances[PAYER] == 900


async def test_an_interrupted_approval_cannot_expire_or_be_paid_by_another(world: World) -> None:
    """While an approval is in flight the payment is reserved for its payer."""
    payment_id = await world.payment()
    world.accounts.down = True
    with pytest.raises(AccountServiceUnavailable):
        await world.payments.approve(PAYER, payment_id)
    world.clock.advance(16 * 60)
    assert (await world.recovery.run()).expired == 0
    with pytest.raises(Exception, match="payment"):
        await world.payments.approve("acc_" + "x" * 26, payment_id)


async def test_recovery_marks_paid_what_the_ledger_shows_moved(world: World) -> None:
    """Money moved but the answer was lost: recovery finds the transfer and marks SUCCEEDED."""
    payment_id = await world.payment()
    world.accounts.fail_after_transfer = True
    with pytest.raises(AccountServiceUnavailable):
        await world.payments.approve(PAYER, payment_id)
    world.accounts.fail_after_transfer = False
    world.clock.advance(61)
    report = await world.recovery.run()
    assert report.approvals_succeeded == 1
    assert world.store.tables.payments[payment_id].state is PaymentState.SUCCEEDED
    assert world.accounts.balances[PAYER] == 900


async def test_recovery_releases_an_approval_that_moved_nothing(world: World) -> None:
    """No transfer in the ledger: the approval is cleared and the payment is payable again."""
    payment_id = await world.payment()
    world.accounts.down = True
    with pytest.raises(AccountServiceUnavailable):
        await world.payments.approve(PAYER, payment_id)
    world.accounts.down = False
    world.clock.advance(61)
    assert (await world.recovery.run()).approvals_released == 1
    stored = world.store.tables.payments[payment_id]
    assert (stored.state, stored.payer_account_id) == (PaymentState.REQUIRES_APPROVAL, "")
    assert (await world.payments.approve(PAYER, payment_id)).state is PaymentState.SUCCEEDED


async def test_recovery_does_nothing_while_account_is_down(world: World) -> None:
    """Recovery postpones rather than guesses when the ledger cannot be read."""
    payment_id = await world.payment()
    world.accounts.down = True
    with pytest.raises(AccountServiceUnavailable):
        await world.payments.approve(PAYER, payment_id)
    world.clock.advance(61)
    report = await world.recovery.run()
    assert not report
    assert world.store.tables.payments[payment_id].approval_start_time is not None


async def test_a_wallet_that_cannot_pay_declines(world: World) -> None:
    """Insufficient funds decline the payment with the reason recorded."""
    payment_id = await world.payment(amount=5_000)
    with pytest.raises(PaymentDeclined):
        await world.payments.approve(PAYER, payment_id)
    stored = world.store.tables.payments[payment_id]
    assert (stored.state, stored.failure_reason) == (PaymentState.DECLINED, "INSUFFICIENT_FUNDS")


async def test_a_refund_the_settlement_cannot_cover_releases_its_reservation(
    world: World,
) -> None:
    """A refused refund moves nothing and leaves the full amount refundable."""
    payment_id = await world.payment()
    await world.payments.approve(PAYER, payment_id)
    world.accounts.balances[world.settlement] = 0
    with pytest.raises(SettlementInsufficientFunds):
        await world.refunds.refund(world.merchant_id, payment_id, 0, "", "r1")
    assert world.store.tables.refunds == {}
    world.accounts.balances[world.settlement] = 100
    done = await world.refunds.refund(world.merchant_id, payment_id, 0, "", "r1")
    assert done.payment.state is PaymentState.REFUNDED


async def test_recovery_applies_a_refund_whose_answer_was_lost(world: World) -> None:
    """A refund that moved money before the outage is applied to the payment by recovery."""
    payment_id = await world.payment()
    await world.payments.approve(PAYER, payment_id)
    world.accounts.fail_after_transfer = True
    with pytest.raises(AccountServiceUnavailable):
        await world.refunds.refund(world.merchant_id, payment_id, 40, "", "r1")
    world.accounts.fail_after_transfer = False
    world.clock.advance(61)
    assert (await world.recovery.run()).refunds_applied == 1
    stored = world.store.tables.payments[payment_id]
    assert (stored.state, stored.amount_refunded_minor) == (
        PaymentState.PARTIALLY_REFUNDED,
        40,
    )


async def test_a_key_verifies_until_revoked(world: World) -> None:
    """The issued secret verifies; after revocation it is API_KEY_INVALID."""
    owner = "acc_" + "o" * 26
    shop = await world.merchants.create(owner, "Shop", "EUR", "k")
    issued = await world.keys.create(owner, shop.id, "prod")
    assert (await world.keys.verify(issued.secret)).merchant_id == shop.id
    await world.keys.revoke(owner, issued.key.id)
    with pytest.raises(ApiKeyInvalid):
        await world.keys.verify(issued.secret)


async def test_keys_keep_verifying_during_a_pepper_rotation(world: World) -> None:
    """A key issued under the old pepper verifies when that pepper is named as previous."""
    from services.merchant.domain import ApiKeys

    owner = "acc_" + "o" * 26
    shop = await world.merchants.create(owner, "Shop", "EUR", "k")
    issued = await world.keys.create(owner, shop.id, "prod")
    rotated = ApiKeys(world.store, pepper=b"n" * 32, previous_pepper=b"p" * 32, clock=world.clock)
    assert (await rotated.verify(issued.secret)).merchant_id == shop.id
    # Verified once under the previous pepper, it was re-hashed: the old pepper can go.
    finished = ApiKeys(world.store, pepper=b"n" * 32, clock=world.clock)
    assert (await finished.verify(issued.secret)).merchant_id == shop.id


async def test_a_key_from_an_unknown_pepper_does_not_verify(world: World) -> None:
    """Without the pepper it was hashed under, a key is API_KEY_INVALID."""
    from services.merchant.domain import ApiKeys

    owner = "acc_" + "o" * 26
    shop = await world.merchants.create(owner, "Shop", "EUR", "k")
    issued = await world.keys.create(owner, shop.id, "prod")
    with pytest.raises(ApiKeyInvalid):
        await ApiKeys(world.store, pepper=b"n" * 32, clock=world.clock).verify(issued.secret)

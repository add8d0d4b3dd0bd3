"""Merchants, API keys, payments and refunds over real account and merchant servers.

Runs on SQLite and PostgreSQL; the account fixture audits the ledger after every test.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from paynow.merchant.v1 import (
    api_key_service_pb2,
    merchant_pb2,
    merchant_service_pb2,
    payment_pb2,
    payment_service_pb2,
)
from services.framework import new_id

from .conftest import MerchantHarness

pb = payment_service_pb2
State = payment_pb2.PaymentState


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


async def expect_error(call: object, code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert (caught.value.code(), reason_of(caught.value)) == (code, reason)


def refund(payment_id: str, amount: int = 0, key: str | None = None) -> pb.RefundPaymentRequest:
    return pb.RefundPaymentRequest(
        id=payment_id, amount_minor=amount, reason="returned", idempotency_key=key or new_id("rfd")
    )


async def test_the_whole_journey_moves_money_exactly(merchant: MerchantHarness) -> None:
    """Wallet → deposit → merchant → key → payment → approve → partial and full refund."""
    payer = await merchant.account.person(deposit_minor=10_000)
    shop = await merchant.shop()
    secret = await merchant.api_key(shop)
    verified = await merchant.as_edge().keys.VerifyApiKey(
        api_key_service_pb2.VerifyApiKeyRequest(secret=secret)
    )
    assert verified.merchant_id == shop.merchant.id
    payment = await merchant.payment(shop, 2_500)
    assert payment.state == State.PAYMENT_STATE_REQUIRES_APPROVAL
    paid = await merchant.approve(payer.id, payment.id)
    assert (paid.state, paid.payer_account_id) == (State.PAYMENT_STATE_SUCCEEDED, payer.id)
    settlement = shop.merchant.settlement_account_id
    assert await merchant.balance(payer.id) == 7_500
    assert await merchant.balance(settlement, shop.owner_id) == 2_500

    as_shop = merchant.as_merchant(shop.merchant.id).payments
    partial = await as_shop.RefundPayment(refund(payment.id, 1_000))
    assert partial.payment.state == State.PAYMENT_STATE_PARTIALLY_REFUNDED
    assert partial.payment.amount_refunded_minor == 1_000
    rest = await as_shop.RefundPayment(refund(payment.id))
    assert (rest.refund.amount_minor, rest.payment.state) == (1_500, State.PAYMENT_STATE_REFUNDED)
    assert await merchant.balance(payer.id) == 10_000
    assert await merchant.balance(settlement, shop.owner_id) == 0


async def test_create_merchant_is_idempotent(merchant: MerchantHarness) -> None:
    """The same key returns the same merchant and settlement account."""
    owner = await merchant.account.person()
    request = merchant_service_pb2.CreateMerchantRequest(
        merchant=merchant_pb2.Merchant(display_name="Shop", currency_code="EUR"),
        idempotency_key="m-1",
    )
    stub = merchant.as_user(owner.id).merchants
    first, again = await stub.CreateMerchant(request), await stub.CreateMerchant(request)
    assert first == again
    listed = await stub.ListMerchants(merchant_service_pb2.ListMerchantsRequest())
    assert [m.id for m in listed.merchants] == [first.id]


async def test_merchant_with_an_unsupported_currency_is_refused(merchant: MerchantHarness) -> None:
    """The settlement account's currency check reaches the caller as UNSUPPORTED_CURRENCY."""
    owner = await merchant.account.person()
    await expect_error(
        merchant.as_user(owner.id).merchants.CreateMerchant(
            merchant_service_pb2.CreateMerchantRequest(
                merchant=merchant_pb2.Merchant(display_name="Shop", currency_code="XTS"),
                idempotency_key="m-2",
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNSUPPORTED_CURRENCY",
    )


async def test_another_users_merchant_is_not_found(merchant: MerchantHarness) -> None:
    """User B cannot read user A's merchant or its keys."""
    shop = await merchant.shop()
    stranger = await merchant.account.person()
    stubs = merchant.as_user(stranger.id)
    await expect_error(
        stubs.merchants.GetMerchant(merchant_service_pb2.GetMerchantRequest(id=shop.merchant.id)),
        grpc.StatusCode.NOT_FOUND,
        "MERCHANT_NOT_FOUND",
    )
    await expect_error(
        stubs.keys.ListApiKeys(
            api_key_service_pb2.ListApiKeysRequest(merchant_id=shop.merchant.id)
        ),
        grpc.StatusCode.NOT_FOUND,
        "MERCHANT_NOT_FOUND",
    )


async def test_api_keys_list_without_secrets_and_stop_working_when_revoked(
    merchant: MerchantHarness,
) -> None:
    """Listing shows only the prefix; a revoked or unknown key is API_KEY_INVALID."""
    shop = await merchant.shop()
    secret = await merchant.api_key(shop)
    owner = merchant.as_user(shop.owner_id).keys
    listed = await owner.ListApiKeys(
        api_key_service_pb2.ListApiKeysRequest(merchant_id=shop.merchant.id)
    )
    (key,) = listed.api_keys
    assert secret.startswith(key.key_prefix)
    assert secret not in str(listed)
    revoked = await owner.RevokeApiKey(api_key_service_pb2.RevokeApiKeyRequest(id=key.id))
    assert revoked.state == merchant_pb2.API_KEY_STATE_REVOKED
    edge = merchant.as_edge().keys
    for candidate in (secret, "sk_" + "x" * 43, "not-a-key"):
        await expect_error(
            edge.VerifyApiKey(api_key_service_pb2.VerifyApiKeyRequest(secret=candidate)),
            grpc.StatusCode.UNAUTHENTICATED,
            "API_KEY_INVALID",
        )


async def test_payment_in_another_currency_is_refused(merchant: MerchantHarness) -> None:
    """A merchant takes only its own currency."""
    shop = await merchant.shop()
    await expect_error(
        merchant.as_merchant(shop.merchant.id).payments.CreatePayment(
            pb.CreatePaymentRequest(amount_minor=5, currency_code="USD", idempotency_key="o")
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "CURRENCY_MISMATCH",
    )


async def test_payments_are_visible_only_to_their_merchant_and_payer(
    merchant: MerchantHarness,
) -> None:
    """Another merchant's key and, once paid, another person get NOT_FOUND."""
    shop, other_shop = await merchant.shop(), await merchant.shop()
    payer = await merchant.account.person(deposit_minor=100)
    stranger = await merchant.account.person()
    payment = await merchant.payment(shop, 50)
    request = pb.GetPaymentRequest(id=payment.id)
    await expect_error(
        merchant.as_merchant(other_shop.merchant.id).payments.GetPayment(request),
        grpc.StatusCode.NOT_FOUND,
        "PAYMENT_NOT_FOUND",
    )
    # Waiting for approval, any signed-in person with the id may look (and pay).
    await merchant.as_user(stranger.id).payments.GetPayment(request)
    await merchant.approve(payer.id, payment.id)
    assert (await merchant.as_user(payer.id).payments.GetPayment(request)).id == payment.id
    await expect_error(
        merchant.as_user(stranger.id).payments.GetPayment(request),
        grpc.StatusCode.NOT_FOUND,
        "PAYMENT_NOT_FOUND",
    )


async def test_approval_without_funds_declines_the_payment(merchant: MerchantHarness) -> None:
    """A wallet that cannot pay gets PAYMENT_DECLINED and the payment is DECLINED for good."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=10)
    payment = await merchant.payment(shop, 50)
    await expect_error(
        merchant.approve(payer.id, payment.id),
        grpc.StatusCode.FAILED_PRECONDITION,
        "PAYMENT_DECLINED",
    )
    got = await merchant.as_merchant(shop.merchant.id).payments.GetPayment(
        pb.GetPaymentRequest(id=payment.id)
    )
    assert (got.state, got.failure_reason) == (
        State.PAYMENT_STATE_DECLINED,
        "INSUFFICIENT_FUNDS",
    )
    assert await merchant.balance(payer.id) == 10


async def test_declined_payment_cannot_be_paid(merchant: MerchantHarness) -> None:
    """DeclinePayment ends it; approving afterwards is PAYMENT_NOT_PAYABLE."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=100)
    payment = await merchant.payment(shop, 50)
    declined = await merchant.as_user(payer.id).payments.DeclinePayment(
        pb.DeclinePaymentRequest(id=payment.id)
    )
    assert declined.state == State.PAYMENT_STATE_DECLINED
    await expect_error(
        merchant.approve(payer.id, payment.id),
        grpc.StatusCode.FAILED_PRECONDITION,
        "PAYMENT_NOT_PAYABLE",
    )


async def test_refund_cannot_exceed_what_is_left(merchant: MerchantHarness) -> None:
    """A refund larger than the rest is REFUND_EXCEEDS_PAYMENT; an unpaid one NOT_REFUNDABLE."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=100)
    payment = await merchant.payment(shop, 60)
    stub = merchant.as_merchant(shop.merchant.id).payments
    await expect_error(
        stub.RefundPayment(refund(payment.id, 10)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "PAYMENT_NOT_REFUNDABLE",
    )
    await merchant.approve(payer.id, payment.id)
    await stub.RefundPayment(refund(payment.id, 50))
    await expect_error(
        stub.RefundPayment(refund(payment.id, 11)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFUND_EXCEEDS_PAYMENT",
    )


async def test_refund_is_idempotent_per_key(merchant: MerchantHarness) -> None:
    """The same refund key returns the first refund and moves the money once."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=100)
    payment = await merchant.payment(shop, 60)
    await merchant.approve(payer.id, payment.id)
    stub = merchant.as_merchant(shop.merchant.id).payments
    first = await stub.RefundPayment(refund(payment.id, 20, key="r-1"))
    again = await stub.RefundPayment(refund(payment.id, 20, key="r-1"))
    assert first.refund.id == again.refund.id
    assert await merchant.balance(payer.id) == 60


async def test_lists_are_newest_first_and_filtered(merchant: MerchantHarness) -> None:
    """ListPayments filters by state; ListMyPayments shows what the person paid."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=100)
    paid = await merchant.payment(shop, 10)
    waiting = await merchant.payment(shop, 20)
    await merchant.approve(payer.id, paid.id)
    stub = merchant.as_merchant(shop.merchant.id).payments
    everything = await stub.ListPayments(pb.ListPaymentsRequest())
    assert [p.id for p in everything.payments] == [waiting.id, paid.id]
    succeeded = await stub.ListPayments(pb.ListPaymentsRequest(state=State.PAYMENT_STATE_SUCCEEDED))
    assert [p.id for p in succeeded.payments] == [paid.id]
    mine = await merchant.as_user(payer.id).payments.ListMyPayments(pb.ListMyPaymentsRequest())
    assert [p.id for p in mine.payments] == [paid.id]


async def test_watch_streams_until_the_payment_is_paid(merchant: MerchantHarness) -> None:
    """WatchPayment sends the current state, then the approval, then ends."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=100)
    payment = await merchant.payment(shop, 10)
    stream = merchant.as_merchant(shop.merchant.id).payments.WatchPayment(
        pb.WatchPaymentRequest(id=payment.id), timeout=10
    )
    states = []
    async for update in stream:
        states.append(update.state)
        if len(states) == 1:
            await merchant.approve(payer.id, payment.id)
    assert states == [State.PAYMENT_STATE_REQUIRES_APPROVAL, State.PAYMENT_STATE_SUCCEEDED]


async def test_concurrent_approvals_of_one_payment_move_money_once(
    merchant: MerchantHarness,
) -> None:
    """50 concurrent ApprovePayment calls for one payment debit the wallet once."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=1_000)
    payment = await merchant.payment(shop, 100)
    results = await asyncio.gather(
        *(merchant.approve(payer.id, payment.id) for _ in range(50)), return_exceptions=True
    )
    assert any(not isinstance(r, BaseException) for r in results)
    assert await merchant.balance(payer.id) == 900
    got = await merchant.as_user(payer.id).payments.GetPayment(pb.GetPaymentRequest(id=payment.id))
    assert got.state == State.PAYMENT_STATE_SUCCEEDED


async def test_concurrent_approvals_against_a_short_balance_pay_exactly_ten(
    merchant: MerchantHarness,
) -> None:
    """50 payments approved at once against a balance covering 10: exactly 10 succeed."""
    shop = await merchant.shop()
    payer = await merchant.account.person(deposit_minor=1_000)
    payments = [await merchant.payment(shop, 100) for _ in range(50)]
    results = await asyncio.gather(
        *(merchant.approve(payer.id, p.id) for p in payments), return_exceptions=True
    )
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    declined = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(succeeded) == 10
    assert {reason_of(e) for e in declined} == {"PAYMENT_DECLINED"}
    assert await merchant.balance(payer.id) == 0


async def test_concurrent_creates_with_one_key_make_one_payment(merchant: MerchantHarness) -> None:
    """50 concurrent CreatePayment calls with one idempotency key make one payment."""
    shop = await merchant.shop()
    stub = merchant.as_merchant(shop.merchant.id).payments
    request = pb.CreatePaymentRequest(
        amount_minor=500, currency_code="EUR", description="tea", idempotency_key="order-1"
    )
    results = await asyncio.gather(
        *(stub.CreatePayment(request) for _ in range(50)), return_exceptions=True
    )
    created = {r.id for r in results if not isinstance(r, BaseException)}
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert all(reason_of(e) == "REQUEST_IN_PROGRESS" for e in errors)
    listed = await stub.ListPayments(pb.ListPaymentsRequest())
    assert len(listed.payments) == 1


async def test_watch_ends_normally_before_the_callers_deadline(merchant: MerchantHarness) -> None:
    """A watch on a waiting payment ends with OK just before the deadline, not with an error."""
    shop = await merchant.shop()
    payment = await merchant.payment(shop, 10)
    stream = merchant.as_merchant(shop.merchant.id).payments.WatchPayment(
        pb.WatchPaymentRequest(id=payment.id), timeout=1.0
    )
    states = [update.state async for update in stream]
    assert states == [State.PAYMENT_STATE_REQUIRES_APPROVAL]
    assert await stream.code() == grpc.StatusCode.OK

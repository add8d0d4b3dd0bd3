"""Refunds: money back from the settlement account to the payer, never more than was paid.

Protocol, like approval: (1) in one transaction, reserve the amount by writing a PENDING
refund keyed by (payment, idempotency key); (2) Transfer settlement → payer with the refund
id as key; (3) mark it succeeded and add it to the payment. A refused transfer deletes the
reservation (nothing moved). An unknown outcome leaves it PENDING: the merchant's retry with
the same idempotency key drives the same refund again, and recovery settles it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from services.framework import IdempotencyKeyReused, new_id

from .errors import (
    PaymentNotFound,
    PaymentNotRefundable,
    RefundExceedsPayment,
    SettlementInsufficientFunds,
)
from .merchants import UnitOfWork
from .models import PAID_STATES, Payment, PaymentState, Refund
from .ports import AccountGateway, MerchantUnitOfWork, TransferRefused

__all__ = ["Refunded", "Refunds", "apply_refund"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Refunded:
    payment: Payment
    refund: Refund


class Refunds:
    def __init__(
        self, uow: UnitOfWork, accounts: AccountGateway, *, clock: Callable[[], datetime]
    ) -> None:
        self._uow = uow
        self._accounts = accounts
        self._clock = clock

    async def refund(
        self, merchant_id: str, payment_id: str, amount_minor: int, reason: str, key: str
    ) -> Refunded:
        """Refund `amount_minor` (0: all that is left) of the merchant's succeeded payment.

        Raises PaymentNotFound, PaymentNotRefundable, RefundExceedsPayment,
        SettlementInsufficientFunds, IdempotencyKeyReused, AccountServiceUnavailable.
        """
        payment, refund = await self._reserve(merchant_id, payment_id, amount_minor, reason, key)
        if refund.succeeded:
            return Refunded(payment, refund)
        try:
            await self._accounts.transfer(
                from_account_id=payment.settlement_account_id,
                to_account_id=payment.payer_account_id,
                amount_minor=refund.amount_minor,
                currency_code=refund.currency_code,
                memo=f"refund {refund.id} of {payment.id}",
                key=refund.id,
            )
        except TransferRefused as refused:
            await self._release(refund)
            if refused.reason == "INSUFFICIENT_FUNDS":
                raise SettlementInsufficientFunds(
                    payment_id=payment_id, refund_minor=refund.amount_minor
                ) from None
            raise PaymentNotRefundable(
                payment_id=payment_id, decline_reason=refused.reason
            ) from None
        done = await self._complete(refund)
        log.info("payment_refunded", payment_id=payment_id, refund_id=refund.id)
        return done

    async def _reserve(
        self, merchant_id: str, payment_id: str, amount_minor: int, reason: str, key: str
    ) -> tuple[Payment, Refund]:
        async def work(uow: MerchantUnitOfWork) -> tuple[Payment, Refund]:
            payment = await uow.payments.get(payment_id, lock=True)
            if payment is None or payment.merchant_id != merchant_id:
                raise PaymentNotFound(payment_id=payment_id)
            earlier = await uow.refunds.get_by_key(payment_id, key)
            if earlier is not None:
                if (amount_minor and earlier.amount_minor != amount_minor) or (
                    earlier.reason != reason
                ):
                    raise IdempotencyKeyReused(idempotency_key=key)
                return payment, earlier
            if payment.state not in PAID_STATES:
                raise PaymentNotRefundable(payment_id=payment_id, state=payment.state.value)
            left = payment.refundable_minor - await uow.refunds.pending_total(payment_id)
            amount = amount_minor or left
            if amount <= 0 or amount > left:
                raise RefundExceedsPayment(
                    payment_id=payment_id,
                    refundable_minor=left,
                    violations=[
                        ("REFUND_EXCEEDS_PAYMENT", f"payments/{payment_id}", f"at most {left}")
                    ],
                )
            refund = Refund(
                id=new_id("rfd"),
                payment_id=payment_id,
                amount_minor=amount,
                currency_code=payment.currency_code,
                reason=reason,
                idempotency_key=key,
                succeeded=False,
                create_time=self._clock(),
            )
            await uow.refunds.add(refund)
            return payment, refund

        return await self._uow(work)

    async def _release(self, refund: Refund) -> None:
        async def work(uow: MerchantUnitOfWork) -> None:
            await uow.refunds.delete(refund.id)

        await self._uow(work)

    async def _complete(self, refund: Refund) -> Refunded:
        async def work(uow: MerchantUnitOfWork) -> Refunded:
            return await apply_refund(uow, refund, self._clock())

        return await self._uow(work)


async def apply_refund(uow: MerchantUnitOfWork, refund: Refund, now: datetime) -> Refunded:
    """Record a refund whose money moved: add it to the payment, once."""
    payment = await uow.payments.get(refund.payment_id, lock=True)
    if payment is None:
        raise PaymentNotFound(payment_id=refund.payment_id)
    current = await uow.refunds.get_by_key(refund.payment_id, refund.idempotency_key)
    if current is not None and current.succeeded:
        return Refunded(payment, current)
    refunded = payment.amount_refunded_minor + refund.amount_minor
    state = (
        PaymentState.REFUNDED
        if refunded == payment.amount_minor
        else PaymentState.PARTIALLY_REFUNDED
    )
    updated = payment.changed(now, amount_refunded_minor=refunded, state=state)
    await uow.payments.save(updated, expected_version=payment.version)
    await uow.refunds.mark_succeeded(refund.id)
    done = Refund(**{**refund.__dict__, "succeeded": True})
    return Refunded(updated, done)

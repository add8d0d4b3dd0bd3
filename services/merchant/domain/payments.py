"""Payments: a merchant asks, a signed-in person approves or declines, money moves once.

Approval protocol (money moves only through account's Transfer, keyed by the payment id):
1. In one transaction, lock the payment, check it is payable and record the payer and
   `approval_start_time`. From then on nobody else can pay it and it cannot expire.
2. Call Transfer(payer → settlement, key = payment id). Account applies a key at most once,
   so however often this step runs, the money moves once.
3. In one transaction, mark the payment SUCCEEDED (or DECLINED if account refused).
If account is unreachable in step 2 the outcome is unknown: the payment stays
REQUIRES_APPROVAL with the approval recorded, and either the payer's retry runs step 2 again
(same key, so it completes rather than repeats), or recovery (recovery.py) settles it from
the ledger with LookupTransfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from services.framework import IdempotencyKeyReused, PageRequest, new_id

from .errors import (
    CurrencyMismatch,
    MerchantDisabled,
    MerchantNotFound,
    PaymentDeclined,
    PaymentNotFound,
    PaymentNotPayable,
)
from .merchants import UnitOfWork
from .models import PAID_STATES, MerchantState, Payment, PaymentState
from .ports import AccountGateway, DuplicateKey, MerchantUnitOfWork, TransferRefused

__all__ = ["NewPayment", "PaymentPage", "Payments", "Viewer"]

_OPEN_TO_ANYONE = frozenset({PaymentState.REQUIRES_APPROVAL, PaymentState.EXPIRED})

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Viewer:
    """Who asks: a signed-in person, a merchant (API key), or neither."""

    user_id: str | None = None
    merchant_id: str | None = None


@dataclass(frozen=True)
class NewPayment:
    amount_minor: int
    currency_code: str
    description: str
    idempotency_key: str


@dataclass(frozen=True)
class PaymentPage:
    payments: list[Payment]
    next_page_token: str


class Payments:
    def __init__(
        self,
        uow: UnitOfWork,
        accounts: AccountGateway,
        *,
        clock: Callable[[], datetime],
        payment_ttl: timedelta,
        watch_interval_s: float = 0.5,
    ) -> None:
        self._uow = uow
        self._accounts = accounts
        self._clock = clock
        self._ttl = payment_ttl
        self._watch_interval_s = watch_interval_s

    def visible(self, payment: Payment, viewer: Viewer) -> Payment:
        """The payment as `viewer` may see it; raises PaymentNotFound otherwise.

        Its merchant sees it always; a signed-in person while nobody has paid or declined it
        (the id is the unguessable link they were sent; an expired one stays readable so
        they learn why it cannot be paid), and afterwards only if it was theirs.
        """
        now = self._clock()
        shown = _as_seen(payment, now)
        if viewer.merchant_id and viewer.merchant_id == payment.merchant_id:
            return shown
        unclaimed = not payment.payer_account_id and shown.state in _OPEN_TO_ANYONE
        if viewer.user_id and (payment.payer_account_id == viewer.user_id or unclaimed):
            return shown
        raise PaymentNotFound(payment_id=payment.id)

    async def create(self, merchant_id: str, request: NewPayment) -> Payment:
        """Ask for a payment in the merchant's currency, once per idempotency key.

        Raises MerchantNotFound, MerchantDisabled, CurrencyMismatch, IdempotencyKeyReused.
        """
        now = self._clock()

        async def work(uow: MerchantUnitOfWork) -> Payment:
            earlier = await uow.payments.get_by_creation_key(merchant_id, request.idempotency_key)
            if earlier is not None:
                if (earlier.amount_minor, earlier.currency_code, earlier.description) != (
                    request.amount_minor,
                    request.currency_code,
                    request.description,
                ):
                    raise IdempotencyKeyReused(idempotency_key=request.idempotency_key)
                return earlier
            merchant = await uow.merchants.get(merchant_id)
            if merchant is None:
                raise MerchantNotFound(merchant_id=merchant_id)
            if merchant.state is not MerchantState.ACTIVE:
                raise MerchantDisabled(merchant_id=merchant_id)
            if request.currency_code != merchant.currency_code:
                raise CurrencyMismatch(
                    merchant_currency=merchant.currency_code,
                    requested_currency=request.currency_code,
                )
            payment = Payment(
                id=new_id("pay"),
                merchant_id=merchant_id,
                settlement_account_id=merchant.settlement_account_id,
                amount_minor=request.amount_minor,
                currency_code=request.currency_code,
                description=request.description,
                state=PaymentState.REQUIRES_APPROVAL,
                create_time=now,
                expire_time=now + self._ttl,
                update_time=now,
                creation_key=request.idempotency_key,
            )
            await uow.payments.add(payment)
            return payment

        try:
            return await self._uow(work)
        except DuplicateKey:
            return await self._uow(work)

    async def get(self, viewer: Viewer, payment_id: str) -> Payment:
        """The payment if `viewer` may see it; raises PaymentNotFound otherwise."""
        return self.visible(await self._load(payment_id), viewer)

    async def list_for_merchant(
        self, merchant_id: str, state: PaymentState | None, page: PageRequest
    ) -> PaymentPage:
        """The merchant's payments, newest first, optionally in one stored state."""

        async def work(uow: MerchantUnitOfWork) -> list[Payment]:
            return await uow.payments.list_for_merchant(merchant_id, state, page)

        return self._page(await self._uow(work, readonly=True), page)

    async def list_for_payer(self, user_id: str, page: PageRequest) -> PaymentPage:
        """The payments the person approved or declined, newest first."""

        async def work(uow: MerchantUnitOfWork) -> list[Payment]:
            return await uow.payments.list_for_payer(user_id, page)

        return self._page(await self._uow(work, readonly=True), page)

    def _page(self, rows: list[Payment], page: PageRequest) -> PaymentPage:
        now = self._clock()
        shown, token = page.split(rows)
        return PaymentPage([_as_seen(p, now) for p in shown], token)

    async def approve(self, user_id: str, payment_id: str) -> Payment:
        """Pay the payment from the person's wallet (the protocol in this module's docstring).

        Raises PaymentNotFound, PaymentNotPayable, PaymentDeclined, AccountServiceUnavailable.
        Approving a payment the person already paid returns it unchanged.
        """
        payment = await self._begin_approval(user_id, payment_id)
        if payment.state in PAID_STATES:
            return payment
        try:
            transfer_id = await self._accounts.transfer(
                from_account_id=user_id,
                to_account_id=payment.settlement_account_id,
                amount_minor=payment.amount_minor,
                currency_code=payment.currency_code,
                memo=f"payment {payment.id}",
                key=payment.id,
            )
        except TransferRefused as refused:
            await self._finish(payment_id, user_id, declined_for=refused.reason)
            log.info("payment_declined", payment_id=payment_id, decline_reason=refused.reason)
            raise PaymentDeclined(payment_id=payment_id, decline_reason=refused.reason) from None
        # Mark it paid only after the transfer: the transfer can be retried safely with the
        # same key, but a success already reported can never be taken back.
        paid = await self._finish(payment_id, user_id, transfer_id=transfer_id)
        log.info("payment_succeeded", payment_id=payment_id, transfer_id=transfer_id)
        return paid

    async def _begin_approval(self, user_id: str, payment_id: str) -> Payment:
        async def work(uow: MerchantUnitOfWork) -> Payment:
            payment = await uow.payments.get(payment_id, lock=True)
            if payment is None:
                raise PaymentNotFound(payment_id=payment_id)
            now = self._clock()
            seen = self.visible(payment, Viewer(user_id=user_id))
            if payment.payer_account_id == user_id and (
                payment.state in PAID_STATES or payment.approval_start_time is not None
            ):
                return payment  # already paid, or a retry of this person's interrupted approval
            if seen.state is not PaymentState.REQUIRES_APPROVAL:
                raise PaymentNotPayable(payment_id=payment_id, state=seen.state.value)
            started = payment.changed(now, payer_account_id=user_id, approval_start_time=now)
            if not await uow.payments.save(started, expected_version=payment.version):
                raise PaymentNotPayable(payment_id=payment_id, state=payment.state.value)
            return started

        return await self._uow(work)

    async def _finish(
        self,
        payment_id: str,
        user_id: str,
        *,
        transfer_id: str = "",
        declined_for: str = "",
    ) -> Payment:
        async def work(uow: MerchantUnitOfWork) -> Payment:
            payment = await uow.payments.get(payment_id, lock=True)
            if payment is None:
                raise PaymentNotFound(payment_id=payment_id)
            if payment.state is not PaymentState.REQUIRES_APPROVAL:
                return payment  # recovery or a concurrent retry finished it first
            now = self._clock()
            if declined_for:
                done = payment.changed(
                    now, state=PaymentState.DECLINED, failure_reason=declined_for
                )
            else:
                done = payment.changed(
                    now, state=PaymentState.SUCCEEDED, approve_time=now, transfer_id=transfer_id
                )
            await uow.payments.save(done, expected_version=payment.version)
            return done

        return await self._uow(work)

    async def decline(self, user_id: str, payment_id: str) -> Payment:
        """Refuse a payment waiting for approval; it can no longer be paid."""

        async def work(uow: MerchantUnitOfWork) -> Payment:
            payment = await uow.payments.get(payment_id, lock=True)
            if payment is None:
                raise PaymentNotFound(payment_id=payment_id)
            seen = self.visible(payment, Viewer(user_id=user_id))
            if payment.payer_account_id == user_id and payment.state is PaymentState.DECLINED:
                return payment
            if seen.state is not PaymentState.REQUIRES_APPROVAL or payment.approval_start_time:
                raise PaymentNotPayable(payment_id=payment_id, state=seen.state.value)
            declined = payment.changed(
                self._clock(),
                state=PaymentState.DECLINED,
                payer_account_id=user_id,
                failure_reason="DECLINED_BY_PAYER",
            )
            await uow.payments.save(declined, expected_version=payment.version)
            return declined

        return await self._uow(work)

    async def watch(
        self, viewer: Viewer, payment_id: str, *, for_s: float | None = None
    ) -> AsyncIterator[Payment]:
        """Yield the payment now and whenever its state changes, until it no longer waits.

        Polls the database: simple, correct across replicas, and cheap at the interval used.
        With `for_s` (the call's remaining time, less a margin) the stream ends normally
        before the deadline. Raises PaymentNotFound for a payment `viewer` may not see.
        """
        loop = asyncio.get_running_loop()
        until = None if for_s is None else loop.time() + for_s
        # Only what a watcher acts on: an approval under way changes the row but not these.
        last: tuple[PaymentState, int] | None = None
        while True:
            payment = self.visible(await self._load(payment_id), viewer)
            seen = (payment.state, payment.amount_refunded_minor)
            if seen != last:
                last = seen
                yield payment
            if payment.state is not PaymentState.REQUIRES_APPROVAL:
                return
            if until is not None and loop.time() + self._watch_interval_s >= until:
                return  # end cleanly before the caller's deadline rather than be cut off
            await asyncio.sleep(self._watch_interval_s)

    async def _load(self, payment_id: str) -> Payment:
        async def work(uow: MerchantUnitOfWork) -> Payment | None:
            return await uow.payments.get(payment_id)

        payment = await self._uow(work, readonly=True)
        if payment is None:
            raise PaymentNotFound(payment_id=payment_id)
        return payment


def _as_seen(payment: Payment, now: datetime) -> Payment:
    state = payment.effective_state(now)
    return payment if state is payment.state else replace(payment, state=state)

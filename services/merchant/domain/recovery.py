"""Settling what an interruption left open, from the ledger (account's source of truth).

Runs at start-up and then periodically. An approval or refund older than `stale_after`
cannot still be in flight (every account call has a shorter deadline), so whether its money
moved is answered by LookupTransfer with its key:
- approval: moved → SUCCEEDED; not moved → the approval is cleared and the payment is
  payable again (or EXPIRED once past its expiry);
- refund: moved → applied to the payment; not moved → the reservation is deleted.
Unpaid payments past their expiry are marked EXPIRED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from .errors import AccountServiceUnavailable
from .merchants import UnitOfWork
from .models import Payment, PaymentState, Refund
from .ports import AccountGateway, MerchantUnitOfWork
from .refunds import apply_refund

__all__ = ["Recovery", "RecoveryReport"]

log = structlog.get_logger(__name__)


@dataclass
class RecoveryReport:
    approvals_succeeded: int = 0
    approvals_released: int = 0
    refunds_applied: int = 0
    refunds_released: int = 0
    expired: int = 0

    def __bool__(self) -> bool:
        return any(vars(self).values())


class Recovery:
    def __init__(
        self,
        uow: UnitOfWork,
        accounts: AccountGateway,
        *,
        clock: Callable[[], datetime],
        stale_after: timedelta = timedelta(seconds=60),
    ) -> None:
        self._uow = uow
        self._accounts = accounts
        self._clock = clock
        self._stale_after = stale_after

    async def run(self) -> RecoveryReport:
        """Settle interrupted approvals and refunds, expire overdue payments; report counts.

        Stops early (and reports what it did) if account is unreachable: the next run retries.
        """
        report = RecoveryReport()
        cutoff = self._clock() - self._stale_after

        async def interrupted(uow: MerchantUnitOfWork) -> tuple[list[Payment], list[Refund]]:
            return (
                await uow.payments.interrupted_approvals(cutoff),
                list(await uow.refunds.interrupted(cutoff)),
            )

        approvals, refunds = await self._uow(interrupted, readonly=True)
        try:
            for payment in approvals:
                await self._settle_approval(payment, report)
            for refund in refunds:
                await self._settle_refund(refund, report)
        except AccountServiceUnavailable:
            log.warning("recovery_postponed", reason="account service unavailable")
        report.expired = await self._expire_overdue()
        return report

    async def _settle_approval(self, payment: Payment, report: RecoveryReport) -> None:
        transfer_id = await self._accounts.lookup_transfer(payment.id)

        async def work(uow: MerchantUnitOfWork) -> bool:
            current = await uow.payments.get(payment.id, lock=True)
            if current is None or current.state is not PaymentState.REQUIRES_APPROVAL:
                return False
            now = self._clock()
            if transfer_id is not None:
                settled = current.changed(
                    now, state=PaymentState.SUCCEEDED, approve_time=now, transfer_id=transfer_id
                )
            else:
                settled = current.changed(now, payer_account_id="", approval_start_time=None)
            return await uow.payments.save(settled, expected_version=current.version)

        if await self._uow(work):
            if transfer_id is not None:
                report.approvals_succeeded += 1
                log.info("payment_settled_from_ledger", payment_id=payment.id, outcome="paid")
            else:
                report.approvals_released += 1
                log.info("payment_settled_from_ledger", payment_id=payment.id, outcome="unpaid")

    async def _settle_refund(self, refund: Refund, report: RecoveryReport) -> None:
        transfer_id = await self._accounts.lookup_transfer(refund.id)

        async def work(uow: MerchantUnitOfWork) -> None:
            if transfer_id is not None:
                await apply_refund(uow, refund, self._clock())
            else:
                await uow.refunds.delete(refund.id)

        await self._uow(work)
        if transfer_id is not None:
            report.refunds_applied += 1
        else:
            report.refunds_released += 1
        log.info("refund_settled_from_ledger", refund_id=refund.id, moved=transfer_id is not None)

    async def _expire_overdue(self) -> int:
        async def work(uow: MerchantUnitOfWork) -> int:
            now = self._clock()
            count = 0
            for payment in await uow.payments.overdue(now, limit=500):
                expired = payment.changed(now, state=PaymentState.EXPIRED)
                count += await uow.payments.save(expired, expected_version=payment.version)
            return count

        return await self._uow(work)

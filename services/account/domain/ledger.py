"""Use cases that move money: deposits and transfers, and reading the ledger.

Every movement is a Transfer with two ledger entries that sum to zero, written in the same
database transaction as both balance updates. A deposit is a transfer from the currency's
external funding account, so the sum of all balances, funding accounts included, is always
zero, and the sum over customer accounts changes only by deposits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from services.framework import IdempotencyKeyReused, PageRequest, new_id

from .accounts import Accounts, UnitOfWork, _owned
from .errors import (
    AccountNotActive,
    AccountNotFound,
    BalanceLimitExceeded,
    CurrencyMismatch,
    InsufficientFunds,
    TransferNotFound,
)
from .models import (
    MAX_BALANCE_MINOR,
    Account,
    AccountKind,
    AccountState,
    EntryKind,
    LedgerEntry,
    Transfer,
    funding_account_id,
)
from .ports import AccountUnitOfWork, DuplicateKey

__all__ = ["Deposited", "EntryPage", "Ledger", "Movement", "Transferred"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Movement:
    """One requested movement of money, as the caller described it."""

    from_account_id: str
    to_account_id: str
    amount_minor: int
    currency_code: str
    memo: str
    idempotency_scope: str
    idempotency_key: str


@dataclass(frozen=True)
class Transferred:
    transfer: Transfer
    # False when the key had been used already and nothing moved this time.
    created: bool


@dataclass(frozen=True)
class Deposited:
    account: Account
    entry: LedgerEntry


@dataclass(frozen=True)
class EntryPage:
    entries: list[LedgerEntry]
    next_page_token: str


class Ledger:
    """Deposits, transfers and the ledger's history."""

    def __init__(
        self, uow: UnitOfWork, accounts: Accounts, *, clock: Callable[[], datetime]
    ) -> None:
        self._uow = uow
        self._accounts = accounts
        self._clock = clock

    async def transfer(self, movement: Movement) -> Transferred:
        """Move money between two active accounts of one currency, once per key.

        Raises AccountNotFound, AccountNotActive, CurrencyMismatch, InsufficientFunds,
        BalanceLimitExceeded, or IdempotencyKeyReused if the key moved something else.
        """
        self._accounts.check_currency(movement.currency_code)
        try:
            return await self._move(movement)
        except DuplicateKey:
            # A concurrent request with the same key committed first; this one returns it.
            return await self._move(movement)

    async def lookup(self, scope: str, key: str) -> Transfer:
        """The transfer made with this key in this scope; raises TransferNotFound if none."""

        async def work(uow: AccountUnitOfWork) -> Transfer | None:
            return await uow.ledger.get_transfer(scope, key)

        found = await self._uow(work, readonly=True)
        if found is None:
            raise TransferNotFound(idempotency_key=key)
        return found

    async def deposit(
        self, owner_id: str, account_id: str, amount_minor: int, currency_code: str, key: str
    ) -> Deposited:
        """Credit the caller's account from outside PayNow, once per key."""
        self._accounts.check_currency(currency_code)

        async def check_owner(uow: AccountUnitOfWork) -> None:
            _owned(await uow.accounts.get(account_id), owner_id, account_id)

        await self._uow(check_owner, readonly=True)
        movement = Movement(
            from_account_id=funding_account_id(currency_code),
            to_account_id=account_id,
            amount_minor=amount_minor,
            currency_code=currency_code,
            memo="deposit",
            idempotency_scope=f"deposit:{owner_id}",
            idempotency_key=key,
        )
        moved = await self.transfer(movement)

        async def read_back(uow: AccountUnitOfWork) -> Deposited:
            account = await uow.accounts.get(account_id)
            entry = await uow.ledger.get_entry(moved.transfer.id, account_id)
            if account is None or entry is None:
                raise AccountNotFound(account_id=account_id)
            return Deposited(account, entry)

        return await self._uow(read_back, readonly=True)

    async def history(
        self,
        owner_id: str,
        account_id: str,
        start_time: datetime | None,
        end_time: datetime | None,
        page: PageRequest,
    ) -> EntryPage:
        """The caller's account's ledger entries, newest first, one page."""

        async def work(uow: AccountUnitOfWork) -> list[LedgerEntry]:
            _owned(await uow.accounts.get(account_id), owner_id, account_id)
            return await uow.ledger.list_entries(account_id, start_time, end_time, page)

        return EntryPage(*page.split(await self._uow(work, readonly=True)))

    async def _move(self, movement: Movement) -> Transferred:
        async def work(uow: AccountUnitOfWork) -> Transferred:
            earlier = await uow.ledger.get_transfer(
                movement.idempotency_scope, movement.idempotency_key
            )
            if earlier is not None:
                if not _same_movement(earlier, movement):
                    raise IdempotencyKeyReused(idempotency_key=movement.idempotency_key)
                return Transferred(earlier, created=False)
            if movement.from_account_id == funding_account_id(movement.currency_code):
                await _ensure_funding_account(uow, movement.currency_code, self._clock())
            locked = await uow.accounts.lock([movement.from_account_id, movement.to_account_id])
            source = _movable(
                locked.get(movement.from_account_id), movement.from_account_id, movement
            )
            target = _movable(locked.get(movement.to_account_id), movement.to_account_id, movement)
            transfer, entries = self._write(source, target, movement)
            await uow.ledger.add_transfer(transfer, entries)
            for account, delta in (
                (source, -movement.amount_minor),
                (target, movement.amount_minor),
            ):
                updated = account.changed(
                    transfer.create_time, balance_minor=account.balance_minor + delta
                )
                # The rows are locked, so the version cannot have moved; check anyway.
                if not await uow.accounts.save(updated, expected_version=account.version):
                    raise RuntimeError(f"locked account {account.id} changed under its lock")
            return Transferred(transfer, created=True)

        moved = await self._uow(work)
        if moved.created:
            log.info(
                "money_moved",
                transfer_id=moved.transfer.id,
                from_account_id=movement.from_account_id,
                to_account_id=movement.to_account_id,
                amount_minor=movement.amount_minor,
                currency_code=movement.currency_code,
            )
        return moved

    def _write(
        self, source: Account, target: Account, movement: Movement
    ) -> tuple[Transfer, list[LedgerEntry]]:
        amount = movement.amount_minor
        if source.kind is not AccountKind.EXTERNAL_FUNDING and source.balance_minor < amount:
            raise InsufficientFunds(
                account_id=source.id,
                balance_minor=source.balance_minor,
                requested_minor=amount,
                violations=[
                    ("INSUFFICIENT_FUNDS", f"accounts/{source.id}", "balance is below the amount")
                ],
            )
        if target.balance_minor > MAX_BALANCE_MINOR - amount:
            raise BalanceLimitExceeded(account_id=target.id)
        if source.balance_minor - amount < -MAX_BALANCE_MINOR:
            raise BalanceLimitExceeded(account_id=source.id)
        now = self._clock()
        transfer = Transfer(
            id=new_id("trf"),
            from_account_id=source.id,
            to_account_id=target.id,
            amount_minor=amount,
            currency_code=movement.currency_code,
            memo=movement.memo,
            idempotency_scope=movement.idempotency_scope,
            idempotency_key=movement.idempotency_key,
            create_time=now,
        )
        deposit = source.kind is AccountKind.EXTERNAL_FUNDING
        entries = [
            LedgerEntry(
                id=new_id("txn"),
                account_id=source.id,
                kind=EntryKind.DEPOSIT if deposit else EntryKind.TRANSFER_OUT,
                amount_minor=-amount,
                currency_code=movement.currency_code,
                balance_after_minor=source.balance_minor - amount,
                counterparty_account_id=target.id,
                transfer_id=transfer.id,
                memo=movement.memo,
                create_time=now,
            ),
            LedgerEntry(
                id=new_id("txn"),
                account_id=target.id,
                kind=EntryKind.DEPOSIT if deposit else EntryKind.TRANSFER_IN,
                amount_minor=amount,
                currency_code=movement.currency_code,
                balance_after_minor=target.balance_minor + amount,
                # A deposit's counterparty is outside PayNow: the funding account stays hidden.
                counterparty_account_id="" if deposit else source.id,
                transfer_id=transfer.id,
                memo=movement.memo,
                create_time=now,
            ),
        ]
        return transfer, entries


def _movable(account: Account | None, account_id: str, movement: Movement) -> Account:
    if account is None:
        raise AccountNotFound(account_id=account_id)
    if account.state is not AccountState.ACTIVE:
        raise AccountNotActive(account_id=account.id, state=account.state.value)
    if account.currency_code != movement.currency_code:
        raise CurrencyMismatch(
            account_id=account.id,
            account_currency=account.currency_code,
            requested_currency=movement.currency_code,
        )
    return account


def _same_movement(transfer: Transfer, movement: Movement) -> bool:
    return (
        transfer.from_account_id == movement.from_account_id
        and transfer.to_account_id == movement.to_account_id
        and transfer.amount_minor == movement.amount_minor
        and transfer.currency_code == movement.currency_code
        and transfer.memo == movement.memo
    )


async def _ensure_funding_account(
    uow: AccountUnitOfWork, currency_code: str, now: datetime
) -> None:
    account_id = funding_account_id(currency_code)
    if await uow.accounts.get(account_id) is not None:
        return
    await uow.accounts.add(
        Account(
            id=account_id,
            kind=AccountKind.EXTERNAL_FUNDING,
            state=AccountState.ACTIVE,
            currency_code=currency_code,
            balance_minor=0,
            owner_id="",
            email="",
            display_name=f"External funding ({currency_code})",
            create_time=now,
            update_time=now,
        )
    )

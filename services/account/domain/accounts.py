"""Use cases on accounts themselves: create, read, rename, close."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

import structlog

from services.framework import IdempotencyKeyReused, PageRequest, UnitOfWorkRunner, new_id

from .errors import (
    AccountNotEmpty,
    AccountNotFound,
    EmailAlreadyExists,
    EtagMismatch,
    UnsupportedCurrency,
)
from .models import Account, AccountKind, AccountState
from .ports import AccountUnitOfWork, DuplicateKey

__all__ = ["AccountPage", "Accounts", "NewAccount", "UnitOfWork"]

log = structlog.get_logger(__name__)


UnitOfWork = UnitOfWorkRunner[AccountUnitOfWork]


@dataclass(frozen=True)
class NewAccount:
    """What CreateAccount asks for."""

    kind: AccountKind
    email: str
    display_name: str
    currency_code: str
    owner_id: str
    creation_key: str


@dataclass(frozen=True)
class AccountPage:
    accounts: list[Account]
    next_page_token: str


class Accounts:
    """Create, read, rename and close accounts. Money moves in `Ledger`."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        currencies: Collection[str],
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._currencies = frozenset(currencies)
        self._clock = clock

    def check_currency(self, currency_code: str) -> None:
        """Raises UnsupportedCurrency unless this deployment holds the currency."""
        if currency_code not in self._currencies:
            raise UnsupportedCurrency(currency_code=currency_code)

    async def create(self, request: NewAccount) -> Account:
        """Create an account, or return the one an earlier call with the same key created.

        Raises IdempotencyKeyReused if the key created a different account, EmailAlreadyExists
        if another key already registered the email, UnsupportedCurrency.
        """
        self.check_currency(request.currency_code)
        try:
            return await self._create_once(request)
        except DuplicateKey:
            # A concurrent call inserted the same key or email first: the re-read below
            # answers as if this call had come second, which it did.
            return await self._create_once(request)

    async def _create_once(self, request: NewAccount) -> Account:
        async def work(uow: AccountUnitOfWork) -> tuple[Account, bool]:
            existing = await uow.accounts.get_by_creation_key(request.creation_key)
            if existing is not None:
                if not _same_request(existing, request):
                    raise IdempotencyKeyReused(idempotency_key=request.creation_key)
                return existing, False
            if (
                request.kind is AccountKind.PERSONAL
                and await uow.accounts.get_by_email(request.email) is not None
            ):
                raise EmailAlreadyExists()
            now = self._clock()
            account_id = new_id("acc")
            account = Account(
                id=account_id,
                kind=request.kind,
                state=AccountState.ACTIVE,
                currency_code=request.currency_code,
                balance_minor=0,
                # A person owns their own wallet: their user id is the wallet's id.
                owner_id=request.owner_id or account_id,
                email=request.email,
                display_name=request.display_name,
                create_time=now,
                update_time=now,
                creation_key=request.creation_key,
            )
            await uow.accounts.add(account)
            return account, True

        account, created = await self._uow(work)
        if created:
            log.info("account_created", account_id=account.id, kind=account.kind.value)
        return account

    async def get(self, owner_id: str, account_id: str) -> Account:
        """The caller's account; raises AccountNotFound for a missing or foreign one."""

        async def work(uow: AccountUnitOfWork) -> Account:
            return _owned(await uow.accounts.get(account_id), owner_id, account_id)

        return await self._uow(work, readonly=True)

    async def list(self, owner_id: str, page: PageRequest) -> AccountPage:
        """The caller's accounts, oldest first, one page."""

        async def work(uow: AccountUnitOfWork) -> list[Account]:
            return await uow.accounts.list_owned(owner_id, page)

        return AccountPage(*page.split(await self._uow(work, readonly=True)))

    async def rename(self, owner_id: str, account_id: str, display_name: str, etag: str) -> Account:
        """Change the display name; raises EtagMismatch if `etag` is set and stale."""

        async def work(uow: AccountUnitOfWork) -> Account:
            account = _owned(await uow.accounts.get(account_id), owner_id, account_id)
            _check_etag(account, etag)
            updated = account.changed(self._clock(), display_name=display_name)
            if not await uow.accounts.save(updated, expected_version=account.version):
                raise EtagMismatch(account_id=account_id)
            return updated

        return await self._uow(work)

    async def close(self, owner_id: str, account_id: str, etag: str) -> Account:
        """Close for good; raises AccountNotEmpty unless the balance is zero. Idempotent."""

        async def work(uow: AccountUnitOfWork) -> Account:
            accounts = await uow.accounts.lock([account_id])
            account = _owned(accounts.get(account_id), owner_id, account_id)
            _check_etag(account, etag)
            if account.state is AccountState.CLOSED:
                return account
            if account.balance_minor != 0:
                raise AccountNotEmpty(
                    account_id=account_id,
                    balance_minor=account.balance_minor,
                    violations=[
                        ("ACCOUNT_NOT_EMPTY", f"accounts/{account_id}", "balance must be zero")
                    ],
                )
            closed = account.changed(self._clock(), state=AccountState.CLOSED)
            if not await uow.accounts.save(closed, expected_version=account.version):
                raise EtagMismatch(account_id=account_id)
            return closed

        closed = await self._uow(work)
        log.info("account_closed", account_id=account_id)
        return closed


def _same_request(account: Account, request: NewAccount) -> bool:
    return (
        account.kind is request.kind
        and account.email.casefold() == request.email.casefold()
        and account.display_name == request.display_name
        and account.currency_code == request.currency_code
        and (not request.owner_id or account.owner_id == request.owner_id)
    )


def _owned(account: Account | None, owner_id: str, account_id: str) -> Account:
    # A foreign account answers exactly like a missing one, so ids cannot be probed.
    if (
        account is None
        or account.owner_id != owner_id
        or account.kind is AccountKind.EXTERNAL_FUNDING
    ):
        raise AccountNotFound(account_id=account_id)
    return account


def _check_etag(account: Account, etag: str) -> None:
    if etag and etag != account.etag:
        raise EtagMismatch(account_id=account.id)

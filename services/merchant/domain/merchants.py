"""Use cases on merchants: create one with its settlement account, read the caller's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from services.framework import PageRequest, UnitOfWorkRunner, new_id

from .errors import MerchantNotFound
from .models import Merchant, MerchantState
from .ports import AccountGateway, DuplicateKey, MerchantUnitOfWork

__all__ = ["MerchantPage", "Merchants", "UnitOfWork"]

log = structlog.get_logger(__name__)
UnitOfWork = UnitOfWorkRunner[MerchantUnitOfWork]


@dataclass(frozen=True)
class MerchantPage:
    merchants: list[Merchant]
    next_page_token: str


class Merchants:
    def __init__(
        self, uow: UnitOfWork, accounts: AccountGateway, *, clock: Callable[[], datetime]
    ) -> None:
        self._uow = uow
        self._accounts = accounts
        self._clock = clock

    async def create(
        self, owner_id: str, display_name: str, currency_code: str, idempotency_key: str
    ) -> Merchant:
        """Create a merchant and its settlement account, once per (owner, key).

        The settlement account is created first, keyed by the same key, so a crash between
        the two steps leaves at most an empty account that the retry adopts. Raises
        UnsupportedCurrency, AccountServiceUnavailable.
        """
        creation_key = f"{owner_id}:{idempotency_key}"

        async def existing(uow: MerchantUnitOfWork) -> Merchant | None:
            return await uow.merchants.get_by_creation_key(creation_key)

        found = await self._uow(existing, readonly=True)
        if found is not None:
            return found
        settlement_id = await self._accounts.create_settlement_account(
            owner_id=owner_id,
            display_name=display_name,
            currency_code=currency_code,
            creation_key=f"merchant:{creation_key}",
        )
        merchant = Merchant(
            id=new_id("mer"),
            display_name=display_name,
            owner_id=owner_id,
            currency_code=currency_code,
            settlement_account_id=settlement_id,
            state=MerchantState.ACTIVE,
            create_time=self._clock(),
            creation_key=creation_key,
        )

        async def insert(uow: MerchantUnitOfWork) -> None:
            await uow.merchants.add(merchant)

        try:
            await self._uow(insert)
        except DuplicateKey:
            # A concurrent call with the same key won; answer with its merchant.
            again = await self._uow(existing, readonly=True)
            if again is None:
                raise
            return again
        log.info("merchant_created", merchant_id=merchant.id, owner_id=owner_id)
        return merchant

    async def get(self, owner_id: str, merchant_id: str) -> Merchant:
        """One of the caller's merchants; raises MerchantNotFound for anyone else's."""

        async def work(uow: MerchantUnitOfWork) -> Merchant | None:
            return await uow.merchants.get(merchant_id)

        return owned(await self._uow(work, readonly=True), owner_id, merchant_id)

    async def list(self, owner_id: str, page: PageRequest) -> MerchantPage:
        """The caller's merchants, newest first."""

        async def work(uow: MerchantUnitOfWork) -> list[Merchant]:
            return await uow.merchants.list_owned(owner_id, page)

        return MerchantPage(*page.split(await self._uow(work, readonly=True)))


def owned(merchant: Merchant | None, owner_id: str, merchant_id: str) -> Merchant:
    # Someone else's merchant answers exactly like a missing one.
    if merchant is None or merchant.owner_id != owner_id:
        raise MerchantNotFound(merchant_id=merchant_id)
    return merchant

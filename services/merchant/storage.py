"""The merchant service's tables and the SQL repositories behind the domain's ports.

Rows never leave this module: every method returns domain objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.framework import PageRequest, UtcDateTime, idempotency_table

from .domain import (
    ApiKey,
    ApiKeyState,
    DuplicateKey,
    Merchant,
    MerchantState,
    Payment,
    PaymentState,
    Refund,
)

__all__ = ["SqlMerchantUnitOfWork", "metadata"]

metadata = MetaData()
idempotency_table(metadata)

merchants = Table(
    "merchants",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("display_name", String(100), nullable=False),
    Column("owner_id", String(40), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("settlement_account_id", String(40), nullable=False),
    Column("state", String(12), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("creation_key", String(300), nullable=False, unique=True),
    Index("ix_merchants_owner", "owner_id", "create_time"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("key_prefix", String(16), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False),
    Column("state", String(12), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("revoke_time", UtcDateTime),
    Index("ix_api_keys_merchant", "merchant_id", "create_time"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("settlement_account_id", String(40), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("description", String(500), nullable=False),
    Column("state", String(24), nullable=False),
    Column("payer_account_id", String(40), nullable=False),
    Column("amount_refunded_minor", BigInteger, nullable=False),
    Column("failure_reason", String(64), nullable=False),
    Column("transfer_id", String(40), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("expire_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Column("approve_time", UtcDateTime),
    Column("approval_start_time", UtcDateTime),
    Column("creation_key", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint("amount_minor > 0", name="ck_payments_positive"),
    CheckConstraint(
        "amount_refunded_minor >= 0 AND amount_refunded_minor <= amount_minor",
        name="ck_payments_refund_within_amount",
    ),
    Index("ux_payments_creation_key", "merchant_id", "creation_key", unique=True),
    Index("ix_payments_merchant", "merchant_id", "create_time"),
    Index("ix_payments_payer", "payer_account_id", "create_time"),
    Index("ix_payments_state", "state", "expire_time"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    CheckConstraint("amount_minor > 0", name="ck_refunds_positive"),
    Index("ux_refunds_key", "payment_id", "idempotency_key", unique=True),
)


def _merchant(row: Any) -> Merchant:
    return Merchant(
        id=row.id,
        display_name=row.display_name,
        owner_id=row.owner_id,
        currency_code=row.currency_code,
        settlement_account_id=row.settlement_account_id,
        state=MerchantState(row.state),
        create_time=row.create_time,
        creation_key=row.creation_key,
    )


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        merchant_id=row.merchant_id,
        display_name=row.display_name,
        key_prefix=row.key_prefix,
        key_hash=row.key_hash,
        state=ApiKeyState(row.state),
        create_time=row.create_time,
        revoke_time=row.revoke_time,
    )


_PAYMENT_FIELDS = tuple(c.name for c in payments.columns if c.name != "state")


def _payment(row: Any) -> Payment:
    return Payment(
        **{name: getattr(row, name) for name in _PAYMENT_FIELDS},
        state=PaymentState(row.state),
    )


def _payment_values(payment: Payment) -> dict[str, object]:
    values = {name: getattr(payment, name) for name in _PAYMENT_FIELDS}
    values["state"] = payment.state.value
    return values


def _refund(row: Any) -> Refund:
    return Refund(**{c.name: getattr(row, c.name) for c in refunds.columns})


def _newest_first(query: Any, table: Table, page: PageRequest) -> Any:
    if page.after_time is not None:
        query = query.where(tuple_(table.c.create_time, table.c.id) < page.after_time)
    return query.order_by(table.c.create_time.desc(), table.c.id.desc()).limit(page.size + 1)


class SqlMerchantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, merchant_id: str) -> Merchant | None:
        row = (
            await self._session.execute(select(merchants).where(merchants.c.id == merchant_id))
        ).first()
        return _merchant(row) if row else None

    async def get_by_creation_key(self, creation_key: str) -> Merchant | None:
        query = select(merchants).where(merchants.c.creation_key == creation_key)
        row = (await self._session.execute(query)).first()
        return _merchant(row) if row else None

    async def list_owned(self, owner_id: str, page: PageRequest) -> list[Merchant]:
        query = _newest_first(
            select(merchants).where(merchants.c.owner_id == owner_id), merchants, page
        )
        return [_merchant(row) for row in await self._session.execute(query)]

    async def add(self, merchant: Merchant) -> None:
        values = {**merchant.__dict__, "state": merchant.state.value}
        try:
            await self._session.execute(insert(merchants).values(**values))
        except IntegrityError as error:
            raise DuplicateKey(merchant.creation_key) from error


class SqlApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, key_id: str) -> ApiKey | None:
        row = (await self._session.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _api_key(row) if row else None

    async def find_by_prefix(self, key_prefix: str) -> list[ApiKey]:
        query = select(api_keys).where(api_keys.c.key_prefix == key_prefix)
        return [_api_key(row) for row in await self._session.execute(query)]

    async def list_for_merchant(self, merchant_id: str, page: PageRequest) -> list[ApiKey]:
        query = _newest_first(
            select(api_keys).where(api_keys.c.merchant_id == merchant_id), api_keys, page
        )
        return [_api_key(row) for row in await self._session.execute(query)]

    async def add(self, key: ApiKey) -> None:
        await self._session.execute(
            insert(api_keys).values(**{**key.__dict__, "state": key.state.value})
        )

    async def save_hash(self, key: ApiKey) -> None:
        await self._session.execute(
            update(api_keys).where(api_keys.c.id == key.id).values(key_hash=key.key_hash)
        )

    async def save(self, key: ApiKey) -> None:
        await self._session.execute(
            update(api_keys)
            .where(api_keys.c.id == key.id)
            .values(state=key.state.value, revoke_time=key.revoke_time)
        )


class SqlPaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, payment_id: str, *, lock: bool = False) -> Payment | None:
        query = select(payments).where(payments.c.id == payment_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return _payment(row) if row else None

    async def get_by_creation_key(self, merchant_id: str, key: str) -> Payment | None:
        query = select(payments).where(
            payments.c.merchant_id == merchant_id, payments.c.creation_key == key
        )
        row = (await self._session.execute(query)).first()
        return _payment(row) if row else None

    async def add(self, payment: Payment) -> None:
        try:
            await self._session.execute(insert(payments).values(**_payment_values(payment)))
        except IntegrityError as error:
            raise DuplicateKey(payment.creation_key) from error

    async def save(self, payment: Payment, expected_version: int) -> bool:
        result = await self._session.execute(
            update(payments)
            .where(and_(payments.c.id == payment.id, payments.c.version == expected_version))
            .values(**_payment_values(payment))
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def list_for_merchant(
        self, merchant_id: str, state: PaymentState | None, page: PageRequest
    ) -> list[Payment]:
        query = select(payments).where(payments.c.merchant_id == merchant_id)
        if state is not None:
            query = query.where(payments.c.state == state.value)
        query = _newest_first(query, payments, page)
        return [_payment(row) for row in await self._session.execute(query)]

    async def list_for_payer(self, payer_account_id: str, page: PageRequest) -> list[Payment]:
        query = select(payments).where(
            payments.c.payer_account_id == payer_account_id,
            # An approval still in flight is not yet the person's payment to list.
            payments.c.state != PaymentState.REQUIRES_APPROVAL.value,
        )
        query = _newest_first(query, payments, page)
        return [_payment(row) for row in await self._session.execute(query)]

    async def interrupted_approvals(self, started_before: datetime) -> list[Payment]:
        query = select(payments).where(
            payments.c.state == PaymentState.REQUIRES_APPROVAL.value,
            payments.c.approval_start_time < started_before,
        )
        return [_payment(row) for row in await self._session.execute(query)]

    async def overdue(self, now: datetime, limit: int) -> list[Payment]:
        query = (
            select(payments)
            .where(
                payments.c.state == PaymentState.REQUIRES_APPROVAL.value,
                payments.c.expire_time <= now,
                payments.c.approval_start_time.is_(None),
            )
            .limit(limit)
        )
        return [_payment(row) for row in await self._session.execute(query)]


class SqlRefundRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_by_key(self, payment_id: str, idempotency_key: str) -> Refund | None:
        query = select(refunds).where(
            refunds.c.payment_id == payment_id, refunds.c.idempotency_key == idempotency_key
        )
        row = (await self._session.execute(query)).first()
        return _refund(row) if row else None

    async def pending_total(self, payment_id: str) -> int:
        query = select(func.coalesce(func.sum(refunds.c.amount_minor), 0)).where(
            refunds.c.payment_id == payment_id, refunds.c.succeeded.is_(False)
        )
        return int((await self._session.execute(query)).scalar_one())

    async def add(self, refund: Refund) -> None:
        await self._session.execute(insert(refunds).values(**refund.__dict__))

    async def mark_succeeded(self, refund_id: str) -> None:
        await self._session.execute(
            update(refunds).where(refunds.c.id == refund_id).values(succeeded=True)
        )

    async def delete(self, refund_id: str) -> None:
        await self._session.execute(
            delete(refunds).where(refunds.c.id == refund_id, refunds.c.succeeded.is_(False))
        )

    async def interrupted(self, created_before: datetime) -> Sequence[Refund]:
        query = select(refunds).where(
            refunds.c.succeeded.is_(False), refunds.c.create_time < created_before
        )
        return [_refund(row) for row in await self._session.execute(query)]


class SqlMerchantUnitOfWork:
    """The merchant repositories bound to one session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.merchants = SqlMerchantRepository(session)
        self.api_keys = SqlApiKeyRepository(session)
        self.payments = SqlPaymentRepository(session)
        self.refunds = SqlRefundRepository(session)

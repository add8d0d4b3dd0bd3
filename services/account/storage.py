"""The account service's tables and the SQL repositories behind the domain's ports.

Rows never leave this module: every method returns domain objects. The CHECK constraints
repeat the domain's money rules, so a bug elsewhere cannot write a negative wallet balance
or an unbalanced entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.framework import PageRequest, UtcDateTime, idempotency_table

from .domain import (
    Account,
    AccountKind,
    AccountState,
    DuplicateKey,
    EntryKind,
    LedgerEntry,
    Transfer,
)

__all__ = ["SqlAccountUnitOfWork", "metadata"]

metadata = MetaData()
# The framework's idempotency records live in each service's own database.
idempotency_table(metadata)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("state", String(12), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("balance_minor", BigInteger, nullable=False),
    Column("owner_id", String(40), nullable=False, index=True),
    Column("email", String(254), nullable=False),
    # Set for personal accounts only, casefolded: the unique index makes emails unique
    # ignoring case even under concurrent sign-ups.
    Column("email_key", String(254), unique=True),
    Column("display_name", String(100), nullable=False),
    Column("creation_key", String(255), unique=True),
    Column("version", Integer, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    CheckConstraint(
        "balance_minor >= 0 OR kind = 'EXTERNAL_FUNDING'", name="ck_accounts_not_overdrawn"
    ),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("from_account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("to_account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("memo", String(200), nullable=False),
    Column("idempotency_scope", String(80), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    CheckConstraint("amount_minor > 0", name="ck_transfers_positive"),
    CheckConstraint("from_account_id <> to_account_id", name="ck_transfers_two_accounts"),
    Index("ux_transfers_idempotency", "idempotency_scope", "idempotency_key", unique=True),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("counterparty_account_id", String(40), nullable=False),
    Column("memo", String(200), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    CheckConstraint("amount_minor <> 0", name="ck_ledger_entries_nonzero"),
    Index("ix_ledger_entries_account_time", "account_id", "create_time", "id"),
)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        kind=AccountKind(row.kind),
        state=AccountState(row.state),
        currency_code=row.currency_code,
        balance_minor=row.balance_minor,
        owner_id=row.owner_id,
        email=row.email,
        display_name=row.display_name,
        create_time=row.create_time,
        update_time=row.update_time,
        version=row.version,
        creation_key=row.creation_key or "",
    )


def _account_values(account: Account) -> dict[str, object]:
    return {
        "kind": account.kind.value,
        "state": account.state.value,
        "currency_code": account.currency_code,
        "balance_minor": account.balance_minor,
        "owner_id": account.owner_id,
        "email": account.email,
        "email_key": account.email.casefold() if account.kind is AccountKind.PERSONAL else None,
        "display_name": account.display_name,
        "creation_key": account.creation_key or None,
        "version": account.version,
        "create_time": account.create_time,
        "update_time": account.update_time,
    }


def _transfer(row: Any) -> Transfer:
    return Transfer(
        id=row.id,
        from_account_id=row.from_account_id,
        to_account_id=row.to_account_id,
        amount_minor=row.amount_minor,
        currency_code=row.currency_code,
        memo=row.memo,
        idempotency_scope=row.idempotency_scope,
        idempotency_key=row.idempotency_key,
        create_time=row.create_time,
    )


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        account_id=row.account_id,
        kind=EntryKind(row.kind),
        amount_minor=row.amount_minor,
        currency_code=row.currency_code,
        balance_after_minor=row.balance_after_minor,
        counterparty_account_id=row.counterparty_account_id,
        transfer_id=row.transfer_id,
        memo=row.memo,
        create_time=row.create_time,
    )


class SqlAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, account_id: str) -> Account | None:
        row = (
            await self._session.execute(select(accounts).where(accounts.c.id == account_id))
        ).first()
        return _account(row) if row else None

    async def lock(self, account_ids: Sequence[str]) -> dict[str, Account]:
        # Sorted ids and FOR UPDATE: every transaction takes row locks in the same order.
        query = (
            select(accounts)
            .where(accounts.c.id.in_(sorted(set(account_ids))))
            .order_by(accounts.c.id)
            .with_for_update()
        )
        return {row.id: _account(row) for row in await self._session.execute(query)}

    async def get_by_email(self, email: str) -> Account | None:
        query = select(accounts).where(accounts.c.email_key == email.casefold())
        row = (await self._session.execute(query)).first()
        return _account(row) if row else None

    async def get_by_creation_key(self, creation_key: str) -> Account | None:
        query = select(accounts).where(accounts.c.creation_key == creation_key)
        row = (await self._session.execute(query)).first()
        return _account(row) if row else None

    async def list_owned(self, owner_id: str, page: PageRequest) -> list[Account]:
        query = select(accounts).where(accounts.c.owner_id == owner_id)
        if page.after_time is not None:
            query = query.where(tuple_(accounts.c.create_time, accounts.c.id) > page.after_time)
        query = query.order_by(accounts.c.create_time, accounts.c.id).limit(page.size + 1)
        return [_account(row) for row in await self._session.execute(query)]

    async def add(self, account: Account) -> None:
        try:
            await self._session.execute(
                insert(accounts).values(id=account.id, **_account_values(account))
            )
        except IntegrityError as error:
            raise DuplicateKey(account.id) from error

    async def save(self, account: Account, expected_version: int) -> bool:
        result = await self._session.execute(
            update(accounts)
            .where(and_(accounts.c.id == account.id, accounts.c.version == expected_version))
            .values(**_account_values(account))
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


class SqlLedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_transfer(self, scope: str, key: str) -> Transfer | None:
        query = select(transfers).where(
            transfers.c.idempotency_scope == scope, transfers.c.idempotency_key == key
        )
        row = (await self._session.execute(query)).first()
        return _transfer(row) if row else None

    async def get_entry(self, transfer_id: str, account_id: str) -> LedgerEntry | None:
        query = select(ledger_entries).where(
            ledger_entries.c.transfer_id == transfer_id,
            ledger_entries.c.account_id == account_id,
        )
        row = (await self._session.execute(query)).first()
        return _entry(row) if row else None

    async def add_transfer(self, transfer: Transfer, entries: Sequence[LedgerEntry]) -> None:
        try:
            await self._session.execute(insert(transfers).values(**transfer.__dict__))
        except IntegrityError as error:
            raise DuplicateKey(transfer.idempotency_key) from error
        await self._session.execute(
            insert(ledger_entries),
            [{**entry.__dict__, "kind": entry.kind.value} for entry in entries],
        )

    async def list_entries(
        self,
        account_id: str,
        start_time: datetime | None,
        end_time: datetime | None,
        page: PageRequest,
    ) -> list[LedgerEntry]:
        query = select(ledger_entries).where(ledger_entries.c.account_id == account_id)
        if start_time is not None:
            query = query.where(ledger_entries.c.create_time >= start_time)
        if end_time is not None:
            query = query.where(ledger_entries.c.create_time < end_time)
        if page.after_time is not None:
            at, entry_id = page.after_time
            query = query.where(
                or_(
                    ledger_entries.c.create_time < at,
                    and_(ledger_entries.c.create_time == at, ledger_entries.c.id < entry_id),
                )
            )
        query = query.order_by(
            ledger_entries.c.create_time.desc(), ledger_entries.c.id.desc()
        ).limit(page.size + 1)
        return [_entry(row) for row in await self._session.execute(query)]

    async def balance_of_entries(self, account_id: str) -> int:
        """The sum of an account's entries: what its balance must equal (for audits)."""
        query = select(func.coalesce(func.sum(ledger_entries.c.amount_minor), 0)).where(
            ledger_entries.c.account_id == account_id
        )
        return int((await self._session.execute(query)).scalar_one())


class SqlAccountUnitOfWork:
    """The account repositories bound to one session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.accounts = SqlAccountRepository(session)
        self.ledger = SqlLedgerRepository(session)

"""The auth service's tables and the SQL repositories behind the domain's ports.

Rows never leave this module: every method returns domain objects. No column holds a
password or a token: only argon2id hashes and SHA-256 digests of refresh tokens.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.framework import UtcDateTime

from .domain import (
    Credential,
    CredentialState,
    DuplicateKey,
    RefreshToken,
    Throttle,
    TokenFamily,
)

__all__ = ["SqlAuthUnitOfWork", "metadata"]

metadata = MetaData()

credentials = Table(
    "credentials",
    metadata,
    # The casefolded email: the primary key makes emails unique ignoring case, even under
    # concurrent sign-ups.
    Column("email_key", String(254), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("state", String(12), nullable=False),
    Column("registration_id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Index("ix_credentials_state_create_time", "state", "create_time"),
)

token_families = Table(
    "token_families",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), nullable=False, index=True),
    Column("create_time", UtcDateTime, nullable=False),
    Column("revoke_time", UtcDateTime),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(40), ForeignKey("token_families.id"), nullable=False, index=True),
    Column("account_id", String(40), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("expire_time", UtcDateTime, nullable=False, index=True),
    Column("used_time", UtcDateTime),
)

login_throttles = Table(
    "login_throttles",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_time", UtcDateTime, nullable=False, index=True),
    Column("locked_until", UtcDateTime),
)


def _credential(row: Any) -> Credential:
    return Credential(
        email_key=row.email_key,
        email=row.email,
        state=CredentialState(row.state),
        registration_id=row.registration_id,
        password_hash=row.password_hash,
        display_name=row.display_name,
        currency_code=row.currency_code,
        create_time=row.create_time,
        update_time=row.update_time,
        account_id=row.account_id or "",
    )


class SqlCredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _one(self, *where: Any) -> Credential | None:
        row = (await self._session.execute(select(credentials).where(*where))).first()
        return _credential(row) if row else None

    async def get(self, email_key: str) -> Credential | None:
        return await self._one(credentials.c.email_key == email_key)

    async def get_by_account(self, account_id: str) -> Credential | None:
        return await self._one(credentials.c.account_id == account_id)

    async def add(self, credential: Credential) -> None:
        values = {**credential.__dict__, "state": credential.state.value}
        values["account_id"] = credential.account_id or None
        try:
            await self._session.execute(insert(credentials).values(**values))
        except IntegrityError as error:
            raise DuplicateKey(credential.registration_id) from error

    async def activate(
        self, email_key: str, registration_id: str, account_id: str, now: datetime
    ) -> bool:
        result = await self._session.execute(
            update(credentials)
            .where(
                credentials.c.email_key == email_key,
                credentials.c.registration_id == registration_id,
                credentials.c.state == CredentialState.PENDING.value,
            )
            .values(state=CredentialState.ACTIVE.value, account_id=account_id, update_time=now)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def delete_pending(self, email_key: str, registration_id: str) -> bool:
        result = await self._session.execute(
            delete(credentials).where(
                credentials.c.email_key == email_key,
                credentials.c.registration_id == registration_id,
                credentials.c.state == CredentialState.PENDING.value,
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def set_password_hash(self, email_key: str, password_hash: str, now: datetime) -> None:
        await self._session.execute(
            update(credentials)
            .where(credentials.c.email_key == email_key)
            .values(password_hash=password_hash, update_time=now)
        )

    async def list_pending(self, created_before: datetime, limit: int) -> list[Credential]:
        query = (
            select(credentials)
            .where(
                credentials.c.state == CredentialState.PENDING.value,
                credentials.c.create_time < created_before,
            )
            .order_by(credentials.c.create_time)
            .limit(limit)
        )
        return [_credential(row) for row in await self._session.execute(query)]


class SqlSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_family(self, family: TokenFamily) -> None:
        await self._session.execute(insert(token_families).values(**family.__dict__))

    async def get_family(self, family_id: str) -> TokenFamily | None:
        query = select(token_families).where(token_families.c.id == family_id)
        row = (await self._session.execute(query)).first()
        return (
            TokenFamily(row.id, row.account_id, row.create_time, row.revoke_time) if row else None
        )

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        await self._session.execute(
            update(token_families)
            .where(token_families.c.id == family_id, token_families.c.revoke_time.is_(None))
            .values(revoke_time=now)
        )

    async def revoke_account(self, account_id: str, now: datetime) -> int:
        result = await self._session.execute(
            update(token_families)
            .where(
                token_families.c.account_id == account_id,
                token_families.c.revoke_time.is_(None),
            )
            .values(revoke_time=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def add_token(self, token: RefreshToken) -> None:
        await self._session.execute(insert(refresh_tokens).values(**token.__dict__))

    async def get_token(self, token_hash: str) -> RefreshToken | None:
        query = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        return RefreshToken(
            row.token_hash,
            row.family_id,
            row.account_id,
            row.create_time,
            row.expire_time,
            row.used_time,
        )

    async def mark_used(self, token_hash: str, now: datetime) -> bool:
        # Conditional on used_time IS NULL: of two concurrent refreshes, only one wins.
        result = await self._session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_time.is_(None))
            .values(used_time=now)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def delete_expired_tokens(self, expired_before: datetime, limit: int) -> list[str]:
        t = refresh_tokens
        # DELETE has no portable LIMIT: the batch is picked by a subquery on the primary key.
        batch = select(t.c.token_hash).where(t.c.expire_time < expired_before).limit(limit)
        query = delete(t).where(t.c.token_hash.in_(batch)).returning(t.c.family_id)
        return list((await self._session.execute(query)).scalars())

    async def delete_empty_families(self, family_ids: Collection[str]) -> int:
        if not family_ids:
            return 0
        f, t = token_families, refresh_tokens
        has_token = select(t.c.token_hash).where(t.c.family_id == f.c.id).exists()
        result = await self._session.execute(
            delete(f).where(f.c.id.in_(list(family_ids)), ~has_token)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class SqlThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_many(self, keys: Sequence[str]) -> dict[str, Throttle]:
        if not keys:
            return {}
        query = select(login_throttles).where(login_throttles.c.key.in_(list(keys)))
        return {
            row.key: Throttle(row.key, row.failures, row.last_failure_time, row.locked_until)
            for row in await self._session.execute(query)
        }

    async def save(self, throttle: Throttle) -> None:
        # Delete then insert rather than an upsert: the same SQL on both databases, and the
        # write transaction (serializable / BEGIN IMMEDIATE) keeps it atomic.
        await self.delete(throttle.key)
        await self._session.execute(insert(login_throttles).values(**throttle.__dict__))

    async def delete(self, key: str) -> None:
        await self._session.execute(delete(login_throttles).where(login_throttles.c.key == key))

    async def delete_expired(self, failed_before: datetime, now: datetime, limit: int) -> int:
        t = login_throttles
        batch = (
            select(t.c.key)
            .where(
                t.c.last_failure_time < failed_before,
                or_(t.c.locked_until.is_(None), t.c.locked_until <= now),
            )
            .limit(limit)
        )
        result = await self._session.execute(delete(t).where(t.c.key.in_(batch)))
        return int(result.rowcount)  # type: ignore[attr-defined]


class SqlAuthUnitOfWork:
    """The auth repositories bound to one session (one transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.credentials = SqlCredentialRepository(session)
        self.sessions = SqlSessionRepository(session)
        self.throttles = SqlThrottleRepository(session)

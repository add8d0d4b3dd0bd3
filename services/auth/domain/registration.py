"""Register: credentials in auth's database and a wallet in account's, never one without
the other. The protocol (docs/auth.md has the long form):

1. commit a PENDING credential (email, argon2id hash, a fresh `reg_…` registration id);
2. call account's CreateAccount with idempotency key = the registration id;
3. mark the credential ACTIVE with the account id.

A crash or timeout after 1 leaves a PENDING row that the same person's retry, or the sweep,
completes by running 2 and 3 again: CreateAccount returns the same account for the same key,
so nothing is made twice. The row is deleted only when account answers that it made nothing
for this key (the email belongs to another account, or the request is invalid).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from services.framework import InvalidArgument, UnitOfWorkRunner, new_id

from .errors import AccountServiceUnavailable, EmailAlreadyRegistered
from .models import Credential, CredentialState
from .ports import (
    AccountDirectory,
    AccountRequestRefused,
    AccountsUnavailable,
    AuthUnitOfWork,
    DuplicateKey,
    EmailTaken,
    PasswordHasher,
)

__all__ = ["Registrations", "UnitOfWork", "email_key"]

log = structlog.get_logger(__name__)

UnitOfWork = UnitOfWorkRunner[AuthUnitOfWork]


def email_key(email: str) -> str:
    """The form emails are compared in: casefolded, so `Ada@X.org` and `ada@x.org` are one."""
    return email.strip().casefold()


class Registrations:
    """Sign-ups, and the sweep that finishes those interrupted half-way."""

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        accounts: AccountDirectory,
        *,
        default_currency: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._accounts = accounts
        self._default_currency = default_currency
        self._clock = clock

    async def register(
        self, email: str, password: str, display_name: str, currency_code: str = ""
    ) -> str:
        """Register a person and return their account id (also their user id).

        A retry with the same email and password completes the first attempt and returns its
        account. Raises EmailAlreadyRegistered if the email is taken (ignoring case, or by a
        sign-up in progress with another password), AccountServiceUnavailable if account
        could not be reached (a retry completes the sign-up), InvalidArgument if account
        refused the request (an unsupported currency).
        """
        key = email_key(email)
        pending = await self._pending(key, password)
        if pending is None:
            password_hash = await self._hasher.hash(password)
            now = self._clock()
            candidate = Credential(
                email_key=key,
                email=email.strip(),
                state=CredentialState.PENDING,
                registration_id=new_id("reg"),
                password_hash=password_hash,
                display_name=display_name,
                currency_code=currency_code or self._default_currency,
                create_time=now,
                update_time=now,
            )
            try:
                await self._uow(lambda uow: uow.credentials.add(candidate))
                pending = candidate
            except DuplicateKey:
                # A concurrent sign-up with this email committed first: answer as its retry.
                pending = await self._pending(key, password)
                if pending is None:  # pragma: no cover - it was deleted in between
                    raise EmailAlreadyRegistered() from None
        return await self._complete(pending)

    async def _pending(self, key: str, password: str) -> Credential | None:
        """The PENDING row a retry should complete, None if there is none; raises
        EmailAlreadyRegistered if the email is ACTIVE or pending with another password."""

        async def work(uow: AuthUnitOfWork) -> Credential | None:
            return await uow.credentials.get(key)

        existing = await self._uow(work, readonly=True)
        if existing is None:
            return None
        if existing.state is CredentialState.ACTIVE:
            raise EmailAlreadyRegistered()
        # Only the person who started this sign-up may finish it; anyone else learns what
        # they would learn after it finished: the email is taken.
        if not await self._hasher.verify(existing.password_hash, password):
            raise EmailAlreadyRegistered()
        return existing

    async def _complete(self, pending: Credential) -> str:
        try:
            account_id = await self._accounts.create_personal_account(pending)
        except AccountsUnavailable:
            log.warning("registration_pending", registration_id=pending.registration_id)
            raise AccountServiceUnavailable(retry_after_s=1.0) from None
        except EmailTaken:
            await self._abandon(pending, "email_taken")
            raise EmailAlreadyRegistered() from None
        except AccountRequestRefused as refused:
            await self._abandon(pending, "refused")
            raise InvalidArgument(violations=[(refused.field, refused.description)]) from None

        async def activate(uow: AuthUnitOfWork) -> None:
            # False when a concurrent completion (retry or sweep) got here first: the same
            # account, so there is nothing left to do.
            await uow.credentials.activate(
                pending.email_key, pending.registration_id, account_id, self._clock()
            )

        await self._uow(activate)
        log.info(
            "registration_completed",
            registration_id=pending.registration_id,
            account_id=account_id,
        )
        return account_id

    async def _abandon(self, pending: Credential, why: str) -> None:
        async def delete(uow: AuthUnitOfWork) -> bool:
            return await uow.credentials.delete_pending(pending.email_key, pending.registration_id)

        await self._uow(delete)
        log.info("registration_abandoned", registration_id=pending.registration_id, cause=why)

    async def sweep(self, older_than: timedelta, limit: int = 100) -> int:
        """Complete (or abandon) PENDING registrations older than `older_than`; returns how
        many were finished either way. Never raises for one registration's failure."""
        cutoff = self._clock() - older_than

        async def work(uow: AuthUnitOfWork) -> list[Credential]:
            return await uow.credentials.list_pending(cutoff, limit)

        finished = 0
        for pending in await self._uow(work, readonly=True):
            try:
                await self._complete(pending)
            except (EmailAlreadyRegistered, InvalidArgument):
                finished += 1  # abandoned: nothing was made on either side
            except AccountServiceUnavailable:
                continue  # still pending; the next sweep tries again
            else:
                finished += 1
        if finished:
            log.info("registrations_swept", finished=finished)
        return finished

"""Sign-in and sessions: Login, Refresh, Logout and ChangePassword.

A session is a family of refresh tokens. Each Refresh uses up the token presented and adds
the next one to the family; a used token presented again means two parties hold the
session (one of them stole it), so the whole family is revoked (RFC 9700, section 4.14.2).
Refresh tokens are random and stored only as SHA-256: they are 256-bit secrets, so a slow
hash would add nothing, and a database leak yields no usable token.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from services.framework import new_id

from .errors import (
    InvalidCredentials,
    PasswordUnchanged,
    RefreshTokenInvalid,
    RefreshTokenReused,
    TooManyAttempts,
)
from .models import Credential, CredentialState, RefreshToken, Throttle, TokenFamily, Tokens
from .ports import AccessTokenSigner, AuthUnitOfWork, PasswordHasher
from .registration import UnitOfWork, email_key
from .throttle import ThrottlePolicy

__all__ = ["Sessions", "address_throttle_key", "email_throttle_key", "hash_refresh_token"]

log = structlog.get_logger(__name__)

REFRESH_TOKEN_PREFIX = "rt_"  # noqa: S105 - a prefix that makes leaked tokens greppable


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def email_throttle_key(key: str) -> str:
    # Hashed: the throttle table also holds emails that are not registered, which auth has
    # no reason to keep in clear.
    return "email:" + hashlib.sha256(key.encode()).hexdigest()[:40]


def address_throttle_key(address: str) -> str:
    return "addr:" + address[:90]


@dataclass(frozen=True)
class _Session:
    account_id: str
    refresh_token: str
    expire_time: datetime


@dataclass(frozen=True)
class _Refreshed:
    outcome: str  # "rotated", "invalid" or "reused"
    session: _Session | None = None
    family: TokenFamily | None = None


class Sessions:
    """Sign-in, token rotation, sign-out and password change."""

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        signer: AccessTokenSigner,
        *,
        refresh_ttl: timedelta,
        email_policy: ThrottlePolicy,
        address_policy: ThrottlePolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._signer = signer
        self._refresh_ttl = refresh_ttl
        self._policies = {"email": email_policy, "addr": address_policy}
        self._clock = clock

    async def login(self, email: str, password: str, client_address: str = "") -> Tokens:
        """Start a session. Raises InvalidCredentials for an unknown email and a wrong
        password alike, after the same amount of hashing; TooManyAttempts (with the delay)
        while the email or the client address is throttled."""
        key = email_key(email)
        keys = [email_throttle_key(key)]
        if client_address:
            keys.append(address_throttle_key(client_address))

        async def read(uow: AuthUnitOfWork) -> tuple[dict[str, Throttle], Credential | None]:
            return await uow.throttles.get_many(keys), await uow.credentials.get(key)

        throttles, credential = await self._uow(read, readonly=True)
        self._check_throttles(keys, throttles)
        if credential is not None and credential.state is not CredentialState.ACTIVE:
            credential = None  # a sign-up still in progress cannot sign in yet
        stored_hash = credential.password_hash if credential else None
        if credential is None or not await self._hasher.verify(stored_hash, password):
            if credential is None:
                await self._hasher.verify(None, password)  # the same work as a wrong password
            await self._record_failure(keys)
            log.info("login_failed", account_id=credential.account_id if credential else None)
            raise InvalidCredentials()
        new_hash = None
        if self._hasher.needs_rehash(credential.password_hash):
            new_hash = await self._hasher.hash(password)
        account_id, now = credential.account_id, self._clock()

        async def succeed(uow: AuthUnitOfWork) -> _Session:
            # Only the email's counter: resetting the address's would let an attacker clear
            # it by signing in to an account of their own between guesses.
            await uow.throttles.delete(keys[0])
            if new_hash is not None:
                await uow.credentials.set_password_hash(key, new_hash, now)
            return await self._start(uow, account_id, now)

        session = await self._uow(succeed)
        log.info("login_succeeded", account_id=account_id, rehashed=new_hash is not None)
        return self._tokens(session, now)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Use up `refresh_token` and return the session's next pair. Raises
        RefreshTokenInvalid if it is unknown, expired or revoked, RefreshTokenReused (after
        revoking the whole session) if it was used before."""
        token_hash, now = hash_refresh_token(refresh_token), self._clock()

        async def work(uow: AuthUnitOfWork) -> _Refreshed:
            token = await uow.sessions.get_token(token_hash)
            if token is None or token.expire_time <= now:
                return _Refreshed("invalid")
            family = await uow.sessions.get_family(token.family_id)
            if family is None or family.revoke_time is not None:
                return _Refreshed("invalid")
            if token.used_time is not None or not await uow.sessions.mark_used(token_hash, now):
                await uow.sessions.revoke_family(family.id, now)
                return _Refreshed("reused", family=family)
            return _Refreshed(
                "rotated", await self._add_token(uow, family.id, family.account_id, now)
            )

        # Committed before raising: a rolled-back revocation would leave the thief signed in.
        result = await self._uow(work)
        if result.outcome == "reused" and result.family is not None:
            log.warning(
                "refresh_token_reused",
                family_id=result.family.id,
                account_id=result.family.account_id,
            )
            raise RefreshTokenReused(session_id=result.family.id)
        if result.session is None:
            raise RefreshTokenInvalid()
        return self._tokens(result.session, now)

    async def logout(self, refresh_token: str) -> None:
        """End the session `refresh_token` belongs to; succeeds whatever the token is."""
        token_hash, now = hash_refresh_token(refresh_token), self._clock()

        async def work(uow: AuthUnitOfWork) -> str | None:
            token = await uow.sessions.get_token(token_hash)
            if token is None:
                return None
            await uow.sessions.revoke_family(token.family_id, now)
            return token.family_id

        family_id = await self._uow(work)
        if family_id is not None:
            log.info("logged_out", family_id=family_id)

    async def change_password(self, account_id: str, current: str, new: str) -> Tokens:
        """Replace the password and end every session, returning a fresh one. Raises
        PasswordUnchanged, InvalidCredentials for a wrong current password, TooManyAttempts."""
        if secrets.compare_digest(current.encode(), new.encode()):
            raise PasswordUnchanged(violations=[("new_password", "equals the current one")])

        async def read(uow: AuthUnitOfWork) -> tuple[Credential | None, dict[str, Throttle]]:
            credential = await uow.credentials.get_by_account(account_id)
            keys = [email_throttle_key(credential.email_key)] if credential else []
            return credential, await uow.throttles.get_many(keys)

        credential, throttles = await self._uow(read, readonly=True)
        if credential is None:
            raise InvalidCredentials()
        # The same throttle as Login: a stolen access token must not become a way to guess
        # the password at full speed.
        keys = [email_throttle_key(credential.email_key)]
        self._check_throttles(keys, throttles)
        if not await self._hasher.verify(credential.password_hash, current):
            await self._record_failure(keys)
            raise InvalidCredentials()
        new_hash, now = await self._hasher.hash(new), self._clock()

        async def work(uow: AuthUnitOfWork) -> tuple[int, _Session]:
            await uow.credentials.set_password_hash(credential.email_key, new_hash, now)
            revoked = await uow.sessions.revoke_account(account_id, now)
            await uow.throttles.delete(keys[0])
            return revoked, await self._start(uow, account_id, now)

        revoked, session = await self._uow(work)
        log.info("password_changed", account_id=account_id, sessions_revoked=revoked)
        return self._tokens(session, now)

    def _check_throttles(self, keys: Sequence[str], throttles: dict[str, Throttle]) -> None:
        now = self._clock()
        waits = [
            wait
            for key in keys
            if (wait := self._policy(key).retry_after_s(throttles.get(key), now)) is not None
        ]
        if waits:
            log.info("login_throttled", retry_after_s=max(waits))
            raise TooManyAttempts(retry_after_s=float(math.ceil(max(waits))))

    async def _record_failure(self, keys: Sequence[str]) -> None:
        now = self._clock()

        async def work(uow: AuthUnitOfWork) -> None:
            current = await uow.throttles.get_many(keys)
            for key in keys:
                await uow.throttles.save(
                    self._policy(key).after_failure(key, current.get(key), now)
                )

        await self._uow(work)

    def _policy(self, key: str) -> ThrottlePolicy:
        return self._policies[key.partition(":")[0]]

    async def _start(self, uow: AuthUnitOfWork, account_id: str, now: datetime) -> _Session:
        family = TokenFamily(id=new_id("ses"), account_id=account_id, create_time=now)
        await uow.sessions.add_family(family)
        return await self._add_token(uow, family.id, account_id, now)

    async def _add_token(
        self, uow: AuthUnitOfWork, family_id: str, account_id: str, now: datetime
    ) -> _Session:
        raw = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        expire_time = now + self._refresh_ttl
        await uow.sessions.add_token(
            RefreshToken(hash_refresh_token(raw), family_id, account_id, now, expire_time)
        )
        return _Session(account_id, raw, expire_time)

    def _tokens(self, session: _Session, now: datetime) -> Tokens:
        access = self._signer.sign(session.account_id, now)
        return Tokens(access.token, access.expire_time, session.refresh_token, session.expire_time)

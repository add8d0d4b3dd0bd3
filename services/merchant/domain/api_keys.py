"""API keys: issue, list, revoke, and verify the secrets merchants send.

A key is a random secret (`sk_` + 43 URL-safe characters, 256 bits), so a fast keyed hash
is enough: HMAC-SHA256 under a server-side pepper. A slow password hash (argon2) would add
tens of milliseconds to every merchant call while protecting nothing that 256 random bits
do not already protect; the pepper means a stolen database alone verifies nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from services.framework import PageRequest, new_id

from .errors import ApiKeyInvalid, ApiKeyNotFound
from .merchants import UnitOfWork, owned
from .models import ApiKey, ApiKeyState, MerchantState
from .ports import MerchantUnitOfWork

__all__ = ["ApiKeyPage", "ApiKeys", "IssuedKey", "VerifiedKey"]

log = structlog.get_logger(__name__)
_SECRET_PREFIX = "sk_"  # noqa: S105 - the public marker of a key, not a secret
_SECRET_LENGTH = len(_SECRET_PREFIX) + 43  # token_urlsafe(32) is 43 characters
_PUBLIC_CHARS = len(_SECRET_PREFIX) + 8


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str


@dataclass(frozen=True)
class VerifiedKey:
    merchant_id: str
    api_key_id: str
    key_prefix: str


@dataclass(frozen=True)
class ApiKeyPage:
    keys: list[ApiKey]
    next_page_token: str


class ApiKeys:
    def __init__(
        self,
        uow: UnitOfWork,
        *,
        pepper: bytes,
        clock: Callable[[], datetime],
        previous_pepper: bytes | None = None,
    ) -> None:
        if len(pepper) < 16 or (previous_pepper is not None and len(previous_pepper) < 16):
            raise ValueError("an API-key pepper must be at least 16 bytes")
        self._uow = uow
        self._pepper = pepper
        # During a pepper rotation keys hashed under the old one still verify (docs/operations).
        self._peppers = (pepper,) if previous_pepper is None else (pepper, previous_pepper)
        self._clock = clock

    def _hash(self, secret: str, pepper: bytes | None = None) -> str:
        key = self._pepper if pepper is None else pepper
        return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()

    async def create(self, owner_id: str, merchant_id: str, display_name: str) -> IssuedKey:
        """Issue a key for one of the caller's merchants; the secret is returned only here."""
        secret = _SECRET_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id=new_id("key"),
            merchant_id=merchant_id,
            display_name=display_name,
            key_prefix=secret[:_PUBLIC_CHARS],
            key_hash=self._hash(secret),
            state=ApiKeyState.ACTIVE,
            create_time=self._clock(),
        )

        async def work(uow: MerchantUnitOfWork) -> None:
            owned(await uow.merchants.get(merchant_id), owner_id, merchant_id)
            await uow.api_keys.add(key)

        await self._uow(work)
        log.info("api_key_created", merchant_id=merchant_id, key_prefix=key.key_prefix)
        return IssuedKey(key, secret)

    async def list(self, owner_id: str, merchant_id: str, page: PageRequest) -> ApiKeyPage:
        """The keys of one of the caller's merchants, newest first."""

        async def work(uow: MerchantUnitOfWork) -> list[ApiKey]:
            owned(await uow.merchants.get(merchant_id), owner_id, merchant_id)
            return await uow.api_keys.list_for_merchant(merchant_id, page)

        return ApiKeyPage(*page.split(await self._uow(work, readonly=True)))

    async def revoke(self, owner_id: str, key_id: str) -> ApiKey:
        """Revoke a key of one of the caller's merchants; revoking twice changes nothing."""

        async def work(uow: MerchantUnitOfWork) -> ApiKey:
            key = await uow.api_keys.get(key_id)
            if key is None:
                raise ApiKeyNotFound(api_key_id=key_id)
            merchant = await uow.merchants.get(key.merchant_id)
            if merchant is None or merchant.owner_id != owner_id:
                raise ApiKeyNotFound(api_key_id=key_id)
            if key.state is ApiKeyState.REVOKED:
                return key
            revoked = replace(key, state=ApiKeyState.REVOKED, revoke_time=self._clock())
            await uow.api_keys.save(revoked)
            return revoked

        key = await self._uow(work)
        log.info("api_key_revoked", merchant_id=key.merchant_id, key_prefix=key.key_prefix)
        return key

    async def verify(self, secret: str) -> VerifiedKey:
        """The merchant a secret acts for; raises ApiKeyInvalid for any key that fails."""
        if len(secret) != _SECRET_LENGTH or not secret.startswith(_SECRET_PREFIX):
            raise ApiKeyInvalid()
        current, *previous = [self._hash(secret, pepper) for pepper in self._peppers]

        async def work(uow: MerchantUnitOfWork) -> tuple[VerifiedKey, ApiKey | None] | None:
            for key in await uow.api_keys.find_by_prefix(secret[:_PUBLIC_CHARS]):
                # Constant-time, though the digest of a random secret leaks little anyway.
                fresh = hmac.compare_digest(key.key_hash, current)
                if not fresh and not any(hmac.compare_digest(key.key_hash, d) for d in previous):
                    continue
                merchant = await uow.merchants.get(key.merchant_id)
                if key.state is not ApiKeyState.ACTIVE or merchant is None:
                    return None
                if merchant.state is not MerchantState.ACTIVE:
                    return None
                stale = None if fresh else replace(key, key_hash=current)
                return VerifiedKey(key.merchant_id, key.id, key.key_prefix), stale
            return None

        found = await self._uow(work, readonly=True)
        if found is None:
            raise ApiKeyInvalid()
        verified, stale = found
        if stale is not None:
            # Verified under the previous pepper: re-hash under the current one, so active
            # keys move over by themselves and the previous pepper can be dropped later.
            async def rehash(uow: MerchantUnitOfWork) -> None:
                await uow.api_keys.save_hash(stale)

            await self._uow(rehash)
            log.info("api_key_rehashed", key_prefix=stale.key_prefix)
        return verified

"""argon2id password hashing, off the event loop and bounded in concurrency.

Parameters: OWASP's first argon2id option, m=19456 KiB (19 MiB), t=2, p=1. We take it over
m=47104/t=1 because memory is what a burst multiplies: with `concurrency` hashes at most in
flight, hashing never holds more than concurrency * 19 MiB, however many logins arrive;
the rest queue on the semaphore instead of exhausting memory. About 19 ms per hash on the
development machine (see docs/auth.md).
"""

from __future__ import annotations

import asyncio
import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["Argon2Passwords"]

OWASP_MEMORY_KIB = 19456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1


class Argon2Passwords:
    """The domain's PasswordHasher port over argon2-cffi."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        memory_cost_kib: int = OWASP_MEMORY_KIB,
        time_cost: int = OWASP_TIME_COST,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Made with the same parameters, so verifying against it costs what a real
        # verification does: an unknown email takes as long as a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        target = password_hash or self._dummy_hash
        async with self._slots:
            try:
                await asyncio.to_thread(self._hasher.verify, target, password)
            except (VerificationError, InvalidHashError):
                return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

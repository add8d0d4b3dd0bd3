"""The USER authenticator remembers verified tokens, never past their expiry."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.edge.auth import Identity, InvalidCredentials
from services.edge.tokens import BearerJwtAuthenticator
from services.framework import AccessTokenVerifier, VerifiedToken

_KEY = Ed25519PrivateKey.generate()


class StaticJwks:
    """A JWKS fetch serving the test key."""

    def __init__(self) -> None:
        public = jwt.algorithms.OKPAlgorithm.to_jwk(_KEY.public_key(), as_dict=True)
        self.keys = [{**public, "kid": "k1"}]

    def __call__(self) -> dict[str, Any]:
        return {"keys": self.keys}


class Clock:
    """Wall-clock seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _token(clock: Clock, ttl_s: int = 300) -> bytes:
    now = int(clock.now)
    claims: dict[str, Any] = {"iss": "i", "aud": "a", "sub": "acc_1", "jti": uuid.uuid4().hex}
    claims |= {"iat": now, "nbf": now, "exp": now + ttl_s}
    return jwt.encode(claims, _KEY, algorithm="EdDSA", headers={"kid": "k1"}).encode()


def _authenticator(clock: Clock, cache_s: float = 60) -> BearerJwtAuthenticator:
    verifier = AccessTokenVerifier(StaticJwks(), issuer="i", audience="a", clock=clock, leeway_s=0)
    return BearerJwtAuthenticator(verifier, cache_s=cache_s, clock=clock)


class CountingVerifier(AccessTokenVerifier):
    """The real verifier, counting the signature checks it makes."""

    checks = 0

    async def verify(self, token: str) -> VerifiedToken:
        self.checks += 1
        return await super().verify(token)


def _counted(clock: Clock, cache_s: float) -> tuple[CountingVerifier, BearerJwtAuthenticator]:
    verifier = CountingVerifier(StaticJwks(), issuer="i", audience="a", clock=clock)
    return verifier, BearerJwtAuthenticator(verifier, cache_s=cache_s, clock=clock)


async def test_a_remembered_token_is_accepted_without_checking_again() -> None:
    """A second use inside the cache time costs no signature check."""
    clock = Clock()
    verifier, authenticator = _counted(clock, 60)
    headers = {b"authorization": b"Bearer " + _token(clock)}
    await authenticator.authenticate(headers)
    assert await authenticator.authenticate(headers) == Identity(user_id="acc_1")
    assert verifier.checks == 1


async def test_a_remembered_token_is_refused_once_it_expires() -> None:
    """The cache never outlives the token's own `exp`."""
    clock = Clock()
    authenticator = _authenticator(clock)
    headers = {b"authorization": b"Bearer " + _token(clock, ttl_s=30)}
    await authenticator.authenticate(headers)
    clock.now += 31
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(headers)


async def test_a_remembered_token_is_checked_again_after_the_cache_time() -> None:
    """After `cache_s` the signature is verified afresh."""
    clock = Clock()
    verifier, authenticator = _counted(clock, 10)
    headers = {b"authorization": b"Bearer " + _token(clock)}
    await authenticator.authenticate(headers)
    clock.now += 11
    await authenticator.authenticate(headers)
    assert verifier.checks == 2

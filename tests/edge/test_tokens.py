"""The USER authenticator: bearer JWTs verified against a JWKS, API keys left alone."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.edge.auth import USER, AccessGate, Identity, InvalidCredentials
from services.edge.errors import EdgeError
from services.edge.tokens import BearerJwtAuthenticator
from services.framework import AccessTokenVerifier

_KEY = Ed25519PrivateKey.generate()


def _jwks() -> dict[str, Any]:
    public = jwt.algorithms.OKPAlgorithm.to_jwk(_KEY.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": "k1", "alg": "EdDSA", "use": "sig"}]}


def _token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "paynow-auth",
        "aud": "paynow",
        "sub": "acc_123",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **overrides,
    }
    return jwt.encode(claims, _KEY, algorithm="EdDSA", headers={"kid": "k1"})


def _authenticator() -> BearerJwtAuthenticator:
    verifier = AccessTokenVerifier(_jwks, issuer="paynow-auth", audience="paynow")
    return BearerJwtAuthenticator(verifier)


async def test_valid_token_yields_the_account() -> None:
    """A valid bearer JWT authenticates its subject as the user."""
    headers = {b"authorization": f"Bearer {_token()}".encode()}
    assert await _authenticator().authenticate(headers) == Identity(user_id="acc_123")


async def test_api_key_is_left_to_the_merchant_authenticator() -> None:
    """`Bearer sk_…` is not a JWT: the USER authenticator passes (None)."""
    assert await _authenticator().authenticate({b"authorization": b"Bearer sk_live_x"}) is None


async def test_expired_token_is_invalid_credentials() -> None:
    """An expired token raises InvalidCredentials, not a crash."""
    headers = {b"authorization": f"Bearer {_token(exp=int(time.time()) - 60)}".encode()}
    with pytest.raises(InvalidCredentials):
        await _authenticator().authenticate(headers)


async def test_gate_answers_401_invalid_token_for_a_bad_jwt() -> None:
    """Through the gate, a tampered token is 401 with an invalid_token challenge."""
    gate = AccessGate({USER: _authenticator()})
    with pytest.raises(EdgeError) as caught:
        await gate.check({USER}, {b"authorization": f"Bearer {_token()}x".encode()})
    assert caught.value.status == 401
    assert 'error="invalid_token"' in dict(caught.value.headers)["WWW-Authenticate"]

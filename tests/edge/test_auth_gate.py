"""The access gate with both real authenticators: the token's shape picks the one that runs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.edge.api_keys import ApiKeyAuthenticator
from services.edge.auth import MERCHANT, USER, AccessGate, Identity
from services.edge.errors import EdgeError
from services.edge.tokens import BearerJwtAuthenticator
from services.framework import AccessTokenVerifier

_KEY = Ed25519PrivateKey.generate()
_SECRET = "sk_" + "b" * 43


def _jwks() -> dict[str, Any]:
    public = jwt.algorithms.OKPAlgorithm.to_jwk(_KEY.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": "k1"}]}


def _token() -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "i", "aud": "a", "sub": "acc_1", "jti": uuid.uuid4().hex}
    claims |= {"iat": now, "nbf": now, "exp": now + 300}
    return jwt.encode(claims, _KEY, algorithm="EdDSA", headers={"kid": "k1"})


class Merchant:
    """VerifyApiKey's verdicts, counting how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def verify(self, secret: str) -> str | None:
        self.calls += 1
        return "mer_1" if secret == _SECRET else None


def _gate(merchant: Merchant) -> AccessGate:
    user = BearerJwtAuthenticator(AccessTokenVerifier(_jwks, issuer="i", audience="a"))
    return AccessGate({USER: user, MERCHANT: ApiKeyAuthenticator(merchant.verify)})


def _bearer(token: str) -> dict[bytes, bytes]:
    return {b"authorization": f"Bearer {token}".encode()}


async def _refusal(gate: AccessGate, allow: set[int], token: str) -> tuple[int, str]:
    with pytest.raises(EdgeError) as caught:
        await gate.check(allow, _bearer(token))
    return caught.value.status, caught.value.reason


async def test_a_route_for_both_takes_a_jwt_as_the_user_without_asking_merchant() -> None:
    """On a USER-or-MERCHANT route a JWT is verified locally; merchant is not called."""
    merchant = Merchant()
    identity = await _gate(merchant).check({USER, MERCHANT}, _bearer(_token()))
    assert (identity, merchant.calls) == (Identity(user_id="acc_1"), 0)


async def test_a_route_for_both_takes_an_api_key_as_the_merchant() -> None:
    """On a USER-or-MERCHANT route `sk_…` goes to the MERCHANT authenticator."""
    identity = await _gate(Merchant()).check({USER, MERCHANT}, _bearer(_SECRET))
    assert identity == Identity(merchant_id="mer_1")


async def test_a_jwt_on_a_merchant_route_is_403() -> None:
    """A valid user token where only API keys are accepted is forbidden, not unauthenticated."""
    assert await _refusal(_gate(Merchant()), {MERCHANT}, _token()) == (
        403,
        "ACCESS_LEVEL_NOT_ALLOWED",
    )


async def test_an_api_key_on_a_user_route_is_403() -> None:
    """A live API key where only user tokens are accepted is forbidden."""
    assert await _refusal(_gate(Merchant()), {USER}, _SECRET) == (403, "ACCESS_LEVEL_NOT_ALLOWED")


async def test_an_unknown_api_key_is_401_api_key_invalid() -> None:
    """A key merchant refuses is 401 with the API key's own reason."""
    assert await _refusal(_gate(Merchant()), {MERCHANT}, "sk_nope") == (401, "API_KEY_INVALID")


async def test_a_tampered_jwt_is_401_access_token_invalid() -> None:
    """A token that fails verification is 401 ACCESS_TOKEN_INVALID."""
    assert await _refusal(_gate(Merchant()), {USER}, _token() + "x") == (
        401,
        "ACCESS_TOKEN_INVALID",
    )


async def test_another_scheme_is_401_credentials_invalid_with_a_challenge() -> None:
    """`Authorization: Basic …` is recognized by nobody: 401 with `error="invalid_token"`."""
    with pytest.raises(EdgeError) as caught:
        await _gate(Merchant()).check({USER}, {b"authorization": b"Basic dTpw"})
    assert (caught.value.status, caught.value.reason) == (401, "CREDENTIALS_INVALID")
    assert 'error="invalid_token"' in dict(caught.value.headers)["WWW-Authenticate"]


async def test_no_authorization_header_is_401_credentials_missing() -> None:
    """Without the header the challenge carries no error, as RFC 6750 says."""
    with pytest.raises(EdgeError) as caught:
        await _gate(Merchant()).check({USER}, {})
    assert (caught.value.status, caught.value.reason) == (401, "CREDENTIALS_MISSING")
    assert dict(caught.value.headers)["WWW-Authenticate"] == 'Bearer realm="paynow"'

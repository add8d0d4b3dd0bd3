"""Access tokens from a real auth server, checked by the edge's verifier against the JWKS
that GetJwks serves: rotation, and every forgery the verifier must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.keys import generate_key, load_keys
from services.framework import AccessTokenRejected, AccessTokenVerifier, CachedJwks, new_id

from .conftest import AuthStack


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(stack: AuthStack, cache_clock: Monotonic | None = None) -> AccessTokenVerifier:
    jwks = CachedJwks(stack.jwks, clock=cache_clock or Monotonic())
    return AccessTokenVerifier(
        jwks, issuer="paynow-auth", audience="paynow", clock=stack.clock.timestamp
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def claims(stack: AuthStack, **changes: Any) -> dict[str, Any]:
    now = int(stack.clock.timestamp())
    values = {
        "iss": "paynow-auth",
        "aud": "paynow",
        "sub": new_id("acc"),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": new_id("jti"),
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def signed_by_auths_key(stack: AuthStack, **changes: Any) -> str:
    key = load_keys(stack.key_dir)[-1]
    return jwt.encode(
        claims(stack, **changes), key.private_key, algorithm="EdDSA", headers={"kid": key.kid}
    )


async def refused(stack: AuthStack, token: str) -> str:
    with pytest.raises(AccessTokenRejected) as caught:
        await verifier(stack).verify(token)
    assert caught.value.detail == "the access token is invalid or expired"
    return caught.value.cause


async def test_a_token_from_login_verifies_with_the_published_key(stack: AuthStack) -> None:
    """The verifier accepts auth's token: subject is the account, kid a published key."""
    email, account_id = await stack.register()
    tokens = await stack.login(email)
    verified = await verifier(stack).verify(tokens.access_token)
    assert verified.subject == account_id
    assert verified.key_id == (await stack.jwks())["keys"][0]["kid"]


async def test_after_rotation_old_tokens_verify_until_expiry_and_new_ones_use_the_new_kid(
    stack: AuthStack,
) -> None:
    """Add a key: it signs at once, the old key stays published, old tokens live out their time."""
    email, _ = await stack.register()
    cache_clock = Monotonic()
    edge = verifier(stack, cache_clock)
    old_token = (await stack.login(email)).access_token
    old_kid = (await edge.verify(old_token)).key_id
    new_key = generate_key(stack.key_dir)
    new_token = (await stack.login(email)).access_token
    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid != old_kid
    cache_clock.now += 31  # past the refetch bound: the unknown kid makes the edge look again
    assert (await edge.verify(new_token)).key_id == new_key.kid
    assert (await edge.verify(old_token)).key_id == old_kid
    stack.clock.advance(stack.settings.access_token_ttl_s + 11)
    with pytest.raises(AccessTokenRejected) as caught:
        await edge.verify(old_token)
    assert caught.value.cause == "expired"


async def test_removing_the_old_key_stops_publishing_it(stack: AuthStack) -> None:
    """Rotation's last step: once the old file is gone, GetJwks lists only the new key."""
    [old_file] = stack.key_dir.glob("*.pem")
    new_key = generate_key(stack.key_dir)
    old_file.unlink()
    assert [key["kid"] for key in (await stack.jwks())["keys"]] == [new_key.kid]


async def test_a_token_signed_by_an_unknown_key_is_refused(stack: AuthStack) -> None:
    """A well-formed token under a key auth never published: unknown_key."""
    stranger = Ed25519PrivateKey.generate()
    token = jwt.encode(claims(stack), stranger, algorithm="EdDSA", headers={"kid": "stranger"})
    assert await refused(stack, token) == "unknown_key"


async def test_a_token_with_alg_none_is_refused(stack: AuthStack) -> None:
    """An unsigned token (`alg: none`) naming a real kid: algorithm_refused."""
    kid = load_keys(stack.key_dir)[-1].kid
    token = forge({"alg": "none", "typ": "JWT", "kid": kid}, claims(stack), lambda _: b"")
    assert await refused(stack, token) == "algorithm_refused"


@pytest.mark.parametrize("secret_form", ["pem", "raw"])
async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    stack: AuthStack, secret_form: str
) -> None:
    """HS256 over the published public key (algorithm confusion): algorithm_refused."""
    key = load_keys(stack.key_dir)[-1]
    public = key.private_key.public_key()
    secret = (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if secret_form == "pem"
        else public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    token = forge(
        {"alg": "HS256", "typ": "JWT", "kid": key.kid},
        claims(stack),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )
    assert await refused(stack, token) == "algorithm_refused"


async def test_an_expired_token_is_refused(stack: AuthStack) -> None:
    """Past exp (beyond the leeway): expired."""
    now = int(stack.clock.timestamp())
    token = signed_by_auths_key(stack, iat=now - 400, nbf=now - 400, exp=now - 60)
    assert await refused(stack, token) == "expired"


async def test_a_token_for_another_audience_is_refused(stack: AuthStack) -> None:
    """Signed by auth's key but for another audience: wrong_audience."""
    assert await refused(stack, signed_by_auths_key(stack, aud="billing")) == "wrong_audience"


async def test_a_token_from_another_issuer_is_refused(stack: AuthStack) -> None:
    """Signed by auth's key but naming another issuer: wrong_issuer."""
    assert await refused(stack, signed_by_auths_key(stack, iss="elsewhere")) == "wrong_issuer"


async def test_a_tampered_token_is_refused(stack: AuthStack) -> None:
    """A real token whose claims were edited after signing: bad_signature."""
    email, _ = await stack.register()
    header, _, signature = (await stack.login(email)).access_token.split(".")
    forged_claims = _b64(json.dumps(claims(stack, sub=new_id("acc"))).encode())
    assert await refused(stack, f"{header}.{forged_claims}.{signature}") == "bad_signature"


async def test_a_token_without_a_jti_is_refused(stack: AuthStack) -> None:
    """Every claim is required: a missing jti is claim_missing."""
    assert await refused(stack, signed_by_auths_key(stack, jti=None)) == "claim_missing"


async def test_unknown_kids_refetch_the_jwks_at_a_bounded_rate(stack: AuthStack) -> None:
    """A flood of forged kids costs one refetch per interval, not one per token."""
    fetches = 0

    async def counting_fetch() -> Any:
        nonlocal fetches
        fetches += 1
        return await stack.jwks()

    cache_clock = Monotonic()
    edge = AccessTokenVerifier(
        CachedJwks(counting_fetch, min_refetch_interval_s=30, clock=cache_clock),
        issuer="paynow-auth",
        audience="paynow",
        clock=stack.clock.timestamp,
    )
    stranger = Ed25519PrivateKey.generate()
    for n in range(5):
        token = jwt.encode(claims(stack), stranger, algorithm="EdDSA", headers={"kid": f"k{n}"})
        with pytest.raises(AccessTokenRejected):
            await edge.verify(token)
    assert fetches == 1
    cache_clock.now += 31
    with pytest.raises(AccessTokenRejected):
        await edge.verify(token)
    assert fetches == 2


def test_a_verifier_cannot_be_configured_with_an_hmac_algorithm() -> None:
    """HS256 next to EdDSA would reopen algorithm confusion: ValueError at construction."""
    with pytest.raises(ValueError, match="asymmetric"):
        AccessTokenVerifier(lambda: {"keys": []}, issuer="i", audience="a", algorithms=("HS256",))

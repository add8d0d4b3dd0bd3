"""Every way authentication at the edge can fail, over HTTP against the real stack.

The API-key cache is set to 1 s here (PAYNOW_EDGE_API_KEY_CACHE_S), so a revocation is seen
within the test; the default is 30 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.e2e.paynow_http import PayNow, Reply, open_shop, running_paynow, sign_up

pytestmark = pytest.mark.e2e
_CACHE_S = 1.0


@pytest.fixture(scope="module")
async def paynow(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PayNow]:
    """One stack for the module, with a one-second API-key cache."""
    data = tmp_path_factory.mktemp("edge-auth") / "data"
    async with running_paynow(data, PAYNOW_EDGE_API_KEY_CACHE_S=str(_CACHE_S)) as running:
        yield running


@pytest.fixture(scope="module")
async def person(paynow: PayNow) -> tuple[str, str]:
    """A signed-up person: (account id, access token)."""
    return await sign_up(paynow.http, "person")


def _signing_key(paynow: PayNow) -> Ed25519PrivateKey:
    """Auth's current signing key, read from its key directory in the data dir."""
    newest = sorted((paynow.data_dir / "signing-keys").glob("*.pem"))[-1]
    key = load_pem_private_key(newest.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _mint(key: Ed25519PrivateKey, kid: str, subject: str, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": "paynow-auth",
        "aud": "paynow",
        "sub": subject,
        "jti": uuid.uuid4().hex,
    }
    payload |= {"iat": now, "nbf": now, "exp": now + 300, **claims}
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid})


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _unauthenticated(reply: Reply, reason: str) -> None:
    assert (reply.status, reply.json["code"], reply.reason) == (401, 16, reason), reply.body
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


async def _get_account(paynow: PayNow, account: str, **headers: str) -> Reply:
    return await paynow.http.raw("GET", f"/v1/accounts/{account}", None, **headers)


async def test_no_authorization_header_is_401_with_a_bearer_challenge(
    paynow: PayNow, person: tuple[str, str]
) -> None:
    """A USER route without credentials: 401 CREDENTIALS_MISSING, `WWW-Authenticate: Bearer`."""
    _unauthenticated(await _get_account(paynow, person[0]), "CREDENTIALS_MISSING")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "eyJhbGci.x.y"])
async def test_a_malformed_authorization_header_is_401(
    paynow: PayNow, person: tuple[str, str], header: str
) -> None:
    """No scheme, no token or another scheme: 401 CREDENTIALS_INVALID."""
    reply = await _get_account(paynow, person[0], Authorization=header)
    _unauthenticated(reply, "CREDENTIALS_INVALID")


async def test_a_jwt_with_a_bad_signature_is_401(paynow: PayNow, person: tuple[str, str]) -> None:
    """Auth's kid and claims, signed by another key: 401 ACCESS_TOKEN_INVALID."""
    forged = _mint(Ed25519PrivateKey.generate(), _kid(person[1]), person[0])
    reply = await _get_account(paynow, person[0], Authorization=f"Bearer {forged}")
    _unauthenticated(reply, "ACCESS_TOKEN_INVALID")


async def test_an_expired_jwt_is_401(paynow: PayNow, person: tuple[str, str]) -> None:
    """Signed by auth's real key but expired a minute ago: 401."""
    past = int(time.time()) - 400
    token = _mint(
        _signing_key(paynow), _kid(person[1]), person[0], iat=past, nbf=past, exp=past + 300
    )
    reply = await _get_account(paynow, person[0], Authorization=f"Bearer {token}")
    _unauthenticated(reply, "ACCESS_TOKEN_INVALID")


async def test_a_jwt_signed_with_auths_key_is_accepted(
    paynow: PayNow, person: tuple[str, str]
) -> None:
    """The control for the minted tokens above: the same key, in date, passes."""
    token = _mint(_signing_key(paynow), _kid(person[1]), person[0])
    reply = await _get_account(paynow, person[0], Authorization=f"Bearer {token}")
    assert reply.status == 200, reply.body


async def test_alg_none_is_401(paynow: PayNow, person: tuple[str, str]) -> None:
    """An unsigned token (`alg: none`) is refused whatever it claims."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims: dict[str, Any] = {"iss": "paynow-auth", "aud": "paynow", "sub": person[0], "jti": "j"}
    claims |= {"iat": now, "nbf": now, "exp": now + 300}
    token = f"{part({'alg': 'none', 'kid': _kid(person[1])})}.{part(claims)}."
    reply = await _get_account(paynow, person[0], Authorization=f"Bearer {token}")
    _unauthenticated(reply, "ACCESS_TOKEN_INVALID")


async def test_a_jwt_from_an_unknown_key_is_401(paynow: PayNow, person: tuple[str, str]) -> None:
    """A kid auth never published (after the edge's one refetch): 401."""
    token = _mint(Ed25519PrivateKey.generate(), "unknown-kid", person[0])
    reply = await _get_account(paynow, person[0], Authorization=f"Bearer {token}")
    _unauthenticated(reply, "ACCESS_TOKEN_INVALID")


async def test_an_unknown_api_key_is_401(paynow: PayNow) -> None:
    """A well-formed key merchant never issued: 401 API_KEY_INVALID."""
    secret = "sk_" + secrets.token_urlsafe(32)
    reply = await paynow.http.call("GET", "/v1/payments", token=secret)
    _unauthenticated(reply, "API_KEY_INVALID")


async def test_a_revoked_api_key_stops_working_within_the_cache_time(paynow: PayNow) -> None:
    """Revoked through the API, the key is refused once its cached verdict expires."""
    http = paynow.http
    _, owner = await sign_up(http, "revoker")
    merchant, secret = await open_shop(http, owner)
    assert (await http.call("GET", "/v1/payments", token=secret)).status == 200
    keys = await http.call("GET", f"/v1/merchants/{merchant['id']}/apiKeys", token=owner)
    key_id = keys.json["apiKeys"][0]["id"]
    revoked = await http.call("POST", f"/v1/apiKeys/{key_id}:revoke", {}, token=owner)
    assert revoked.status == 200, revoked.body
    revoked_at = time.monotonic()
    reply = await http.call("GET", "/v1/payments", token=secret)
    while reply.status == 200 and time.monotonic() - revoked_at < _CACHE_S + 5:
        # The condition itself is polled (nothing signals a cache expiry), briefly paced.
        await asyncio.sleep(0.05)
        reply = await http.call("GET", "/v1/payments", token=secret)
    _unauthenticated(reply, "API_KEY_INVALID")
    assert time.monotonic() - revoked_at < _CACHE_S + 5


async def test_a_jwt_on_a_merchant_only_route_is_403(
    paynow: PayNow, person: tuple[str, str]
) -> None:
    """A person's valid token cannot create payments: 403, not 401."""
    body = {"amountMinor": "100", "currencyCode": "EUR"}
    reply = await paynow.http.call(
        "POST", "/v1/payments", body, token=person[1], Idempotency_Key="k1"
    )
    assert (reply.status, reply.reason) == (403, "ACCESS_LEVEL_NOT_ALLOWED")


async def test_an_api_key_on_a_user_only_route_is_403(
    paynow: PayNow, person: tuple[str, str]
) -> None:
    """A live API key cannot read a person's account: 403."""
    _, owner = await sign_up(paynow.http, "keyholder")
    _, secret = await open_shop(paynow.http, owner)
    reply = await paynow.http.call("GET", f"/v1/accounts/{person[0]}", token=secret)
    assert (reply.status, reply.reason) == (403, "ACCESS_LEVEL_NOT_ALLOWED")


async def test_a_client_sent_identity_header_is_ignored(
    paynow: PayNow, person: tuple[str, str]
) -> None:
    """`X-Paynow-User-Id` without credentials does not make anyone the victim."""
    reply = await _get_account(paynow, person[0], X_Paynow_User_Id=person[0])
    _unauthenticated(reply, "CREDENTIALS_MISSING")


async def test_client_sent_identity_metadata_is_dropped(
    paynow: PayNow, person: tuple[str, str]
) -> None:
    """`Grpc-Metadata-X-Paynow-User-Id: <victim>` beside the attacker's token: still 404."""
    _, attacker = await sign_up(paynow.http, "attacker")
    reply = await _get_account(
        paynow,
        person[0],
        Authorization=f"Bearer {attacker}",
        Grpc_Metadata_X_Paynow_User_Id=person[0],
    )
    assert (reply.status, reply.json["code"]) == (404, 5)

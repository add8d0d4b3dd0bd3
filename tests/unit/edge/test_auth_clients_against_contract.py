"""The edge's JWKS fetch and API-key check against stubs built from its contracts.

edge-auth.json and edge-merchant.json are replayed against the real auth and merchant by
the provider verification, so these are the answers those services are held to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from services.edge.api_keys import verify_with_merchant
from services.edge.tokens import jwks_from_auth
from services.framework import is_id
from tests.contracts.exchange import CONSUMERS_DIR, load_contract, serve_stub

AUTH = load_contract(CONSUMERS_DIR / "edge-auth.json")
MERCHANT = load_contract(CONSUMERS_DIR / "edge-merchant.json")
TOKEN = "internal-token-for-the-stub"


@pytest.fixture
async def channel_to() -> AsyncIterator[list[grpc.aio.Channel]]:
    channels: list[grpc.aio.Channel] = []
    yield channels
    for channel in channels:
        await channel.close()


def open_channel(channels: list[grpc.aio.Channel], address: str) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(address)
    channels.append(channel)
    return channel


async def test_jwks_fetch_hands_the_verifier_every_key_field_it_reads(
    channel_to: list[grpc.aio.Channel],
) -> None:
    """Each key carries kid, kty, crv, x and alg, under the names the verifier looks up."""
    async with serve_stub(AUTH, "the keys that verify access tokens") as stub:
        jwks = await jwks_from_auth(open_channel(channel_to, stub.address))()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert {"kid", "kty", "crv", "x", "alg"} <= set(key)
        assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")


async def test_api_key_check_returns_the_merchant_the_key_acts_for(
    channel_to: list[grpc.aio.Channel],
) -> None:
    """A live key becomes the merchant id merchant names."""
    async with serve_stub(MERCHANT, "a live API key") as stub:
        verify = verify_with_merchant(open_channel(channel_to, stub.address), TOKEN)
        merchant_id = await verify("sk_live_key_from_the_merchant")
    assert merchant_id is not None
    assert is_id(merchant_id, "mer")


async def test_api_key_check_returns_none_for_a_key_merchant_refuses(
    channel_to: list[grpc.aio.Channel],
) -> None:
    """API_KEY_INVALID is a verdict on the key: None, which the edge caches as a refusal."""
    async with serve_stub(MERCHANT, "an API key merchant does not know") as stub:
        verify = verify_with_merchant(open_channel(channel_to, stub.address), TOKEN)
        assert await verify("sk_not-a-key-anyone-was-given") is None

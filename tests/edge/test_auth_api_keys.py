"""The MERCHANT authenticator: API keys checked through a verify call, cached briefly."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.edge.api_keys import API_KEY_SERVICE, ApiKeyAuthenticator, verify_with_merchant
from services.edge.auth import Identity, InvalidCredentials
from services.edge.errors import EdgeError

_SECRET = "sk_" + "a" * 43


class FakeMerchant:
    """Merchant's VerifyApiKey verdicts, counting calls; a revoked key is refused."""

    def __init__(self) -> None:
        self.keys = {_SECRET: "mer_1"}
        self.calls = 0
        self.unavailable = False
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def verify(self, secret: str) -> str | None:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.unavailable:
            raise EdgeError(503, grpc.StatusCode.UNAVAILABLE, "API_KEY_CHECK_UNAVAILABLE", "down")
        return self.keys.get(secret)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _bearer(token: str) -> dict[bytes, bytes]:
    return {b"authorization": f"Bearer {token}".encode()}


async def test_a_live_key_authenticates_its_merchant() -> None:
    """`Bearer sk_…` of a live key yields the merchant it acts for."""
    authenticator = ApiKeyAuthenticator(FakeMerchant().verify)
    assert await authenticator.authenticate(_bearer(_SECRET)) == Identity(merchant_id="mer_1")


async def test_a_token_not_starting_sk_is_left_to_other_authenticators() -> None:
    """A JWT-shaped bearer token is not an API key: None, and merchant is not asked."""
    merchant = FakeMerchant()
    assert await ApiKeyAuthenticator(merchant.verify).authenticate(_bearer("eyJ.x.y")) is None
    assert merchant.calls == 0


async def test_an_unknown_key_is_invalid_credentials_with_its_reason() -> None:
    """A key merchant refuses raises InvalidCredentials with reason API_KEY_INVALID."""
    authenticator = ApiKeyAuthenticator(FakeMerchant().verify)
    with pytest.raises(InvalidCredentials) as caught:
        await authenticator.authenticate(_bearer("sk_unknown"))
    assert caught.value.reason == "API_KEY_INVALID"


async def test_a_key_longer_than_merchant_accepts_is_refused_without_a_call() -> None:
    """Over 200 characters cannot be a key: refused locally."""
    merchant = FakeMerchant()
    with pytest.raises(InvalidCredentials):
        await ApiKeyAuthenticator(merchant.verify).authenticate(_bearer("sk_" + "x" * 300))
    assert merchant.calls == 0


async def test_a_verdict_is_reused_within_the_cache_time() -> None:
    """Two uses of a key within the cache time cost one verify call."""
    merchant = FakeMerchant()
    authenticator = ApiKeyAuthenticator(merchant.verify, ttl_s=30, clock=Clock())
    await authenticator.authenticate(_bearer(_SECRET))
    await authenticator.authenticate(_bearer(_SECRET))
    assert merchant.calls == 1


async def test_a_revoked_key_works_until_the_cache_time_ends() -> None:
    """Revocation reaches the edge once the cached verdict expires, not before."""
    merchant, clock = FakeMerchant(), Clock()
    authenticator = ApiKeyAuthenticator(merchant.verify, ttl_s=30, clock=clock)
    await authenticator.authenticate(_bearer(_SECRET))
    del merchant.keys[_SECRET]
    clock.now += 29
    assert await authenticator.authenticate(_bearer(_SECRET)) == Identity(merchant_id="mer_1")
    clock.now += 2
    with pytest.raises(InvalidCredentials):
        await authenticator.authenticate(_bearer(_SECRET))


async def test_a_refusal_is_cached_too() -> None:
    """Repeating an unknown key does not call merchant again within the cache time."""
    merchant = FakeMerchant()
    authenticator = ApiKeyAuthenticator(merchant.verify, clock=Clock())
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await authenticator.authenticate(_bearer("sk_unknown"))
    assert merchant.calls == 1


async def test_the_cache_holds_digests_never_the_key() -> None:
    """What the cache keeps cannot be replayed: no entry contains the secret."""
    authenticator = ApiKeyAuthenticator(FakeMerchant().verify)
    await authenticator.authenticate(_bearer(_SECRET))
    assert len(authenticator) == 1
    assert all(_SECRET.encode() not in key for key in authenticator.cached_keys())


async def test_the_cache_is_bounded_by_evicting_the_least_recent() -> None:
    """With room for two verdicts, a third key pushes the oldest out."""
    authenticator = ApiKeyAuthenticator(FakeMerchant().verify, max_entries=2)
    for n in range(3):
        with pytest.raises(InvalidCredentials):
            await authenticator.authenticate(_bearer(f"sk_{n}"))
    assert len(authenticator) == 2


async def test_concurrent_first_uses_share_one_call() -> None:
    """Ten requests with a new key at once wait for a single verify call."""
    merchant = FakeMerchant()
    merchant.gate = asyncio.Event()
    authenticator = ApiKeyAuthenticator(merchant.verify)
    waiting = [
        asyncio.ensure_future(authenticator.authenticate(_bearer(_SECRET))) for _ in range(10)
    ]
    await merchant.entered.wait()  # the others were scheduled first, so they wait too
    merchant.gate.set()
    assert set(await asyncio.gather(*waiting)) == {Identity(merchant_id="mer_1")}
    assert merchant.calls == 1


async def test_an_unreachable_merchant_is_503_and_not_cached() -> None:
    """Without a verdict the request fails 503, and the next one asks merchant again."""
    merchant = FakeMerchant()
    merchant.unavailable = True
    authenticator = ApiKeyAuthenticator(merchant.verify)
    with pytest.raises(EdgeError) as caught:
        await authenticator.authenticate(_bearer(_SECRET))
    assert caught.value.status == 503
    merchant.unavailable = False
    assert await authenticator.authenticate(_bearer(_SECRET)) == Identity(merchant_id="mer_1")


class _OverloadedMerchant:
    """A real gRPC server whose VerifyApiKey answers `code` with an optional RetryInfo."""

    def __init__(self, code: grpc.StatusCode, retry_s: int | None) -> None:
        self.code, self.retry_s = code, retry_s

    async def verify(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        status = status_pb2.Status(code=self.code.value[0], message="busy")
        if self.retry_s is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.seconds = self.retry_s
            status.details.add().Pack(info)
        await context.abort_with_status(rpc_status.to_status(status))
        return b""


@pytest.mark.parametrize(
    ("code", "retry_s", "expected"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 3, "3"),  # merchant at its concurrency bound
        (grpc.StatusCode.UNAVAILABLE, None, "1"),  # no RetryInfo: a second
    ],
)
async def test_a_merchant_without_a_verdict_is_a_503_saying_when_to_retry(
    code: grpc.StatusCode, retry_s: int | None, expected: str
) -> None:
    merchant = _OverloadedMerchant(code, retry_s)
    handler = grpc.method_handlers_generic_handler(
        API_KEY_SERVICE,
        {"VerifyApiKey": grpc.unary_unary_rpc_method_handler(merchant.verify)},
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            verify = verify_with_merchant(channel, "internal-token")
            with pytest.raises(EdgeError) as raised:
                await verify(_SECRET)
    finally:
        await server.stop(None)
    error = raised.value
    assert (error.status, error.reason) == (503, "API_KEY_CHECK_UNAVAILABLE")
    assert dict(error.headers)["Retry-After"] == expected
    details = json.loads(error.body())["details"]
    assert details[1] == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": f"{expected}s",
    }

"""MERCHANT access: `Authorization: Bearer sk_…` checked through merchant's VerifyApiKey.

Every answer, a merchant or a refusal, is cached for `ttl_s` (PAYNOW_EDGE_API_KEY_CACHE_S,
default 30 s) in a bounded LRU keyed by the SHA-256 of the key, so the secret itself is never
held. The price: a revoked key keeps working at this edge for up to `ttl_s` after RevokeApiKey.
Concurrent first uses of one key share a single call. Only merchant's verdict is cached: if
merchant cannot be reached, the request gets 503 and the next one asks again.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping

import grpc
import structlog
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from paynow.merchant.v1 import api_key_service_pb2
from services.framework import CALLER_SERVICE_KEY, INTERNAL_TOKEN_KEY

from .auth import Identity, InvalidCredentials, bearer_token
from .errors import EdgeError, backend_status, retry_after_s
from .grpc_client import Channel

__all__ = ["API_KEY_PREFIX", "API_KEY_SERVICE", "ApiKeyAuthenticator", "verify_with_merchant"]

API_KEY_PREFIX = "sk_"
API_KEY_SERVICE = "paynow.merchant.v1.ApiKeyService"
# VerifyApiKey's own limit on the secret; longer ones are refused without a call.
_MAX_SECRET_CHARS = 200
_VERIFY_TIMEOUT_S = 5.0
_C = grpc.StatusCode
# Merchant's answers that are a verdict on the key, and so may be cached as a refusal.
_REFUSALS = frozenset({_C.UNAUTHENTICATED, _C.INVALID_ARGUMENT, _C.NOT_FOUND})
_log = structlog.get_logger("edge")

VerifyKey = Callable[[str], Awaitable[str | None]]


def verify_with_merchant(channel: Channel, internal_token: str | None) -> VerifyKey:
    """A verify function calling merchant's INTERNAL VerifyApiKey on `channel`: the key's
    merchant id, or None when merchant refuses the key. Raises EdgeError 503 when merchant
    does not give a verdict (unreachable, timed out, failing)."""
    call = channel.unary_unary(
        f"/{API_KEY_SERVICE}/VerifyApiKey",
        request_serializer=api_key_service_pb2.VerifyApiKeyRequest.SerializeToString,
        response_deserializer=api_key_service_pb2.VerifyApiKeyResponse.FromString,
    )
    metadata = [(CALLER_SERVICE_KEY, "edge")]
    if internal_token:
        metadata.append((INTERNAL_TOKEN_KEY, internal_token))

    async def verify(secret: str) -> str | None:
        request = api_key_service_pb2.VerifyApiKeyRequest(secret=secret)
        try:
            reply = await call(request, timeout=_VERIFY_TIMEOUT_S, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                return None
            _log.warning("api_key_check_failed", code=exc.code().name)
            # merchant's own RetryInfo (OVERLOADED says when) or a second: the client is told
            # when to retry, as for any other 503 the edge passes on.
            retry_s = retry_after_s(backend_status(exc)) or 1
            raise EdgeError(
                503,
                _C.UNAVAILABLE,
                "API_KEY_CHECK_UNAVAILABLE",
                "cannot check API keys now; retry later",
                headers=[("Retry-After", str(retry_s))],
                details=[error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_s))],
            ) from None
        _log.debug("api_key_verified", key_prefix=reply.key_prefix)
        merchant_id: str = reply.merchant_id
        return merchant_id

    return verify


class ApiKeyAuthenticator:
    """The MERCHANT Authenticator: a bearer token starting `sk_` must be a live API key."""

    def __init__(
        self,
        verify: VerifyKey,
        *,
        ttl_s: float = 30.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verify = verify
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        # SHA-256 of the key → (expiry on `clock`, merchant id or None for a refused key).
        self._cache: collections.OrderedDict[bytes, tuple[float, str | None]] = (
            collections.OrderedDict()
        )
        self._pending: dict[bytes, asyncio.Future[str | None]] = {}

    def __len__(self) -> int:
        """How many verdicts are cached (live or not yet evicted)."""
        return len(self._cache)

    def cached_keys(self) -> list[bytes]:
        """The cache's keys (digests), for tests proving no secret is stored."""
        return list(self._cache)

    async def authenticate(self, headers: Mapping[bytes, bytes]) -> Identity | None:
        """The key's merchant; None when the bearer token is not an API key (or absent);
        raises InvalidCredentials (API_KEY_INVALID) for a key merchant refuses."""
        secret = bearer_token(headers)
        if secret is None or not secret.startswith(API_KEY_PREFIX):
            return None
        if len(secret) > _MAX_SECRET_CHARS:
            raise InvalidCredentials("the API key is not valid", reason="API_KEY_INVALID")
        digest = hashlib.sha256(secret.encode()).digest()
        merchant_id = await self._lookup(secret, digest)
        if merchant_id is None:
            raise InvalidCredentials("the API key is not valid", reason="API_KEY_INVALID")
        return Identity(merchant_id=merchant_id, api_key=digest[:12].hex())

    async def _lookup(self, secret: str, digest: bytes) -> str | None:
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > self._clock():
            self._cache.move_to_end(digest)
            return hit[1]
        task = self._pending.get(digest)
        if task is None:
            # A task of its own, shielded: a client that hangs up does not cancel the check
            # for the other requests waiting on the same key.
            task = asyncio.ensure_future(self._check(secret, digest))
            self._pending[digest] = task
            task.add_done_callback(lambda done: self._settled(digest, done))
        return await asyncio.shield(task)

    async def _check(self, secret: str, digest: bytes) -> str | None:
        merchant_id = await self._verify(secret)
        self._remember(digest, merchant_id)
        return merchant_id

    def _settled(self, digest: bytes, task: asyncio.Future[str | None]) -> None:
        del self._pending[digest]
        if not task.cancelled():
            task.exception()  # retrieved here: its waiters re-raise it, none must log it

    def _remember(self, digest: bytes, merchant_id: str | None) -> None:
        if self._ttl_s <= 0:
            return
        self._cache[digest] = (self._clock() + self._ttl_s, merchant_id)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

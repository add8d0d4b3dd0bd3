"""USER access: `Authorization: Bearer <JWT>` verified locally against auth's published keys.

The keys come from auth's GetJwks over gRPC (or, fronting other services, a JWKS file) and
are cached by the framework's CachedJwks (refetched every 5 minutes, and early on an unknown
`kid` at most once per 30 s), so a request costs a signature check, not a round trip to auth.

A signature check costs about 170 µs of Python, close to what all the rest of a request
costs, while a client sends the same token with every request of its few minutes of life.
So each verified token is remembered by its SHA-256 (bounded, oldest out first) until the
earlier of its `exp` and `cache_s` (PAYNOW_EDGE_JWT_CACHE_S, default 60 s) after its check.
Access tokens cannot be revoked anyway; the bound only limits how long a token signed by a
key just removed from the JWKS keeps passing.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from google.protobuf import json_format

from paynow.auth.v1 import auth_service_pb2
from services.framework import AccessTokenRejected, AccessTokenVerifier, CachedJwks
from services.framework._access_tokens import JwksFetch

from .api_keys import API_KEY_PREFIX
from .auth import Identity, InvalidCredentials, bearer_token
from .grpc_client import Channel

__all__ = ["AUTH_SERVICE", "BearerJwtAuthenticator", "jwks_from_auth", "jwks_from_file"]

AUTH_SERVICE = "paynow.auth.v1.AuthService"
_FETCH_TIMEOUT_S = 5.0
_log = structlog.get_logger("edge")


def jwks_from_auth(channel: Channel) -> JwksFetch:
    """A fetch function for CachedJwks that calls auth's GetJwks on `channel`."""
    call = channel.unary_unary(
        f"/{AUTH_SERVICE}/GetJwks",
        request_serializer=auth_service_pb2.GetJwksRequest.SerializeToString,
        response_deserializer=auth_service_pb2.GetJwksResponse.FromString,
    )

    async def fetch() -> Mapping[str, Any]:
        reply = await call(auth_service_pb2.GetJwksRequest(), timeout=_FETCH_TIMEOUT_S)
        keys = [json_format.MessageToDict(k, preserving_proto_field_name=True) for k in reply.keys]
        return {"keys": keys}

    return fetch


def jwks_from_file(path: Path) -> JwksFetch:
    """A fetch function for CachedJwks reading a JWKS JSON file (re-read on each fetch, so a
    rotated file is picked up like a rotated auth)."""

    def fetch() -> Mapping[str, Any]:
        document: Mapping[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return document

    return fetch


class BearerJwtAuthenticator:
    """The USER Authenticator: a bearer token that is not an API key must be a valid JWT."""

    def __init__(
        self,
        verifier: AccessTokenVerifier,
        *,
        cache_s: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._cache_s = cache_s
        self._max_entries = max_entries
        self._clock = clock
        # SHA-256 of the token → (valid until, on `clock`; the account id).
        self._verified: collections.OrderedDict[bytes, tuple[float, str]] = (
            collections.OrderedDict()
        )

    @classmethod
    def from_source(
        cls, fetch: JwksFetch, *, issuer: str, audience: str, cache_s: float = 60.0
    ) -> BearerJwtAuthenticator:
        """An authenticator whose keys come from `fetch` (jwks_from_auth, jwks_from_file)."""
        verifier = AccessTokenVerifier(CachedJwks(fetch), issuer=issuer, audience=audience)
        return cls(verifier, cache_s=cache_s)

    async def authenticate(self, headers: Mapping[bytes, bytes]) -> Identity | None:
        """The account in a valid token; None for no bearer token or an API key (the
        MERCHANT authenticator's); raises InvalidCredentials for a token that fails."""
        token = bearer_token(headers)
        if token is None or token.startswith(API_KEY_PREFIX):
            return None
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None and hit[0] > self._clock():
            return Identity(user_id=hit[1])
        try:
            verified = await self._verifier.verify(token)
        except AccessTokenRejected as exc:
            # The cause is for operators only: one message for every failure stops probing.
            _log.info("access_token_rejected", cause=exc.cause)
            raise InvalidCredentials(exc.message, reason="ACCESS_TOKEN_INVALID") from None
        if self._cache_s > 0:
            until = min(verified.expires_at.timestamp(), self._clock() + self._cache_s)
            self._verified[digest] = (until, verified.subject)
            while len(self._verified) > self._max_entries:
                self._verified.popitem(last=False)
        return Identity(user_id=verified.subject)

"""USER access: `Authorization: Bearer <JWT>` verified locally against auth's published keys.

The keys come from auth's GetJwks over gRPC and are cached by the framework's CachedJwks
(refetched every 5 minutes, and early on an unknown `kid` at most once per 30 s), so a
request costs a signature check, not a round trip to auth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import structlog
from google.protobuf import json_format

from paynow.auth.v1 import auth_service_pb2
from services.framework import AccessTokenRejected, AccessTokenVerifier, CachedJwks
from services.framework._access_tokens import JwksFetch

from .auth import Identity, InvalidCredentials

__all__ = ["AUTH_SERVICE", "BearerJwtAuthenticator", "jwks_from_auth"]

AUTH_SERVICE = "paynow.auth.v1.AuthService"
_API_KEY_PREFIX = "sk_"
_FETCH_TIMEOUT_S = 5.0
_log = structlog.get_logger("edge")


def jwks_from_auth(channel: grpc.aio.Channel) -> JwksFetch:
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


class BearerJwtAuthenticator:
    """The USER Authenticator: a bearer token that is not an API key must be a valid JWT."""

    def __init__(self, verifier: AccessTokenVerifier) -> None:
        self._verifier = verifier

    @classmethod
    def from_auth(
        cls, channel: grpc.aio.Channel, *, issuer: str, audience: str
    ) -> BearerJwtAuthenticator:
        """An authenticator whose keys come from auth's GetJwks on `channel`."""
        jwks = CachedJwks(jwks_from_auth(channel))
        return cls(AccessTokenVerifier(jwks, issuer=issuer, audience=audience))

    async def authenticate(self, headers: Mapping[bytes, bytes]) -> Identity | None:
        """The account in a valid token; None for no bearer token or an API key (the
        MERCHANT authenticator's); raises InvalidCredentials for a token that fails."""
        scheme, _, raw = headers.get(b"authorization", b"").partition(b" ")
        token = raw.decode("latin-1").strip()
        if scheme.lower() != b"bearer" or not token or token.startswith(_API_KEY_PREFIX):
            return None
        try:
            verified = await self._verifier.verify(token)
        except AccessTokenRejected as exc:
            # The cause is for operators only: one message for every failure stops probing.
            _log.info("access_token_rejected", cause=exc.cause)
            raise InvalidCredentials(exc.message) from None
        return Identity(user_id=verified.subject)

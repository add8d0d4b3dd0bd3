"""AuthServicer: translates between protos and the auth domain, and nothing else.

No try/except here: domain errors reach the framework's error middleware, which builds the
google.rpc.Status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from grpc import aio

from paynow.auth.v1 import auth_pb2, auth_service_pb2, auth_service_pb2_grpc
from services.framework import Unauthenticated, current_caller, to_timestamp

from .domain import Registrations, Sessions, Tokens

__all__ = ["FORWARDED_FOR_KEY", "AuthServicer", "client_address"]

FORWARDED_FOR_KEY = "x-forwarded-for"
JWKS_MAX_AGE_S = 300


def tokens_to_proto(tokens: Tokens) -> auth_pb2.Tokens:
    return auth_pb2.Tokens(
        access_token=tokens.access_token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
        access_token_expire_time=to_timestamp(tokens.access_token_expire_time),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=to_timestamp(tokens.refresh_token_expire_time),
    )


def _peer_host(peer: str) -> str:
    # grpc peers look like `ipv4:1.2.3.4:5678` or `ipv6:[::1]:5678`: the port changes with
    # every connection, so it must not be part of a throttle key.
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer


def client_address(metadata: Mapping[str, Any], peer: str) -> str:
    """The address a sign-in came from: what the edge says, else the connection's peer.

    `x-forwarded-for` is believed only from an internal caller (the edge, with the internal
    credential): from anyone else it is a header they chose, and would let them escape the
    per-address throttle. The last entry is the one the edge itself appended.
    """
    forwarded = metadata.get(FORWARDED_FOR_KEY)
    if current_caller().is_internal and isinstance(forwarded, str) and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return _peer_host(peer)


def _user_id() -> str:
    # The access middleware has already required a user for USER methods; this guards the
    # type and a misconfigured access option alike.
    user_id = current_caller().user_id
    if not user_id:
        raise Unauthenticated("this method needs a signed-in user")
    return user_id


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        registrations: Registrations,
        sessions: Sessions,
        jwks: Callable[[], Mapping[str, Any]],
    ) -> None:
        self._registrations = registrations
        self._sessions = sessions
        self._jwks = jwks

    async def Register(
        self, request: auth_service_pb2.RegisterRequest, context: aio.ServicerContext
    ) -> auth_service_pb2.RegisterResponse:
        account_id = await self._registrations.register(
            request.email, request.password, request.display_name, request.currency_code
        )
        return auth_service_pb2.RegisterResponse(account_id=account_id)

    async def Login(
        self, request: auth_service_pb2.LoginRequest, context: aio.ServicerContext
    ) -> auth_service_pb2.LoginResponse:
        address = client_address(dict(context.invocation_metadata() or ()), context.peer())
        tokens = await self._sessions.login(request.email, request.password, address)
        return auth_service_pb2.LoginResponse(tokens=tokens_to_proto(tokens))

    async def Refresh(
        self, request: auth_service_pb2.RefreshRequest, context: aio.ServicerContext
    ) -> auth_service_pb2.RefreshResponse:
        tokens = await self._sessions.refresh(request.refresh_token)
        return auth_service_pb2.RefreshResponse(tokens=tokens_to_proto(tokens))

    async def Logout(
        self, request: auth_service_pb2.LogoutRequest, context: aio.ServicerContext
    ) -> auth_service_pb2.LogoutResponse:
        await self._sessions.logout(request.refresh_token)
        return auth_service_pb2.LogoutResponse()

    async def ChangePassword(
        self, request: auth_service_pb2.ChangePasswordRequest, context: aio.ServicerContext
    ) -> auth_service_pb2.ChangePasswordResponse:
        tokens = await self._sessions.change_password(
            _user_id(), request.current_password, request.new_password
        )
        return auth_service_pb2.ChangePasswordResponse(tokens=tokens_to_proto(tokens))

    async def GetJwks(
        self, request: auth_service_pb2.GetJwksRequest, context: aio.ServicerContext
    ) -> auth_service_pb2.GetJwksResponse:
        # Trailing, not initial, metadata: the request-id middleware has already sent the
        # initial metadata. The edge copies it to the HTTP Cache-Control header.
        context.set_trailing_metadata((("cache-control", f"public, max-age={JWKS_MAX_AGE_S}"),))
        keys = [auth_pb2.JsonWebKey(**jwk) for jwk in self._jwks()["keys"]]
        return auth_service_pb2.GetJwksResponse(keys=keys)

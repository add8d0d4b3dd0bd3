"""Access at the edge: each route's allowed levels, checked by pluggable Authenticators.

PUBLIC routes pass with no credentials. For USER and MERCHANT routes, the Authenticator
registered for that level verifies the `Authorization` header (the JWT verifier and the
API-key checker plug in here); the verified Identity then travels to the backend as
`x-paynow-user-id` / `x-paynow-merchant-id` beside the internal credential. INTERNAL methods
never get a route, so they never reach this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Protocol

import grpc

from paynow.api.v1 import annotations_pb2

from .errors import EdgeError

__all__ = [
    "INTERNAL",
    "MERCHANT",
    "PUBLIC",
    "USER",
    "AccessGate",
    "Authenticator",
    "Identity",
    "InvalidCredentials",
    "bearer_token",
]

PUBLIC = annotations_pb2.ACCESS_PUBLIC
USER = annotations_pb2.ACCESS_USER
MERCHANT = annotations_pb2.ACCESS_MERCHANT
INTERNAL = annotations_pb2.ACCESS_INTERNAL
_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="paynow"')
_INVALID_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="paynow", error="invalid_token"')


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who an Authenticator verified: a person, a merchant integration, or both."""

    user_id: str | None = None
    merchant_id: str | None = None
    # A non-secret name of the API key used (a digest prefix): merchants' rate limits count
    # per key. Not part of equality: it names the credential, not who the caller is.
    api_key: str | None = dataclasses.field(default=None, compare=False)


class InvalidCredentials(Exception):
    """Raised by an Authenticator for credentials of its kind that fail verification
    (bad signature, expired, revoked); the message is safe to show the client, and `reason`
    goes in the 401's ErrorInfo (ACCESS_TOKEN_INVALID, API_KEY_INVALID, …)."""

    def __init__(self, message: str, *, reason: str = "CREDENTIALS_INVALID") -> None:
        super().__init__(message)
        self.reason = reason


def bearer_token(headers: Mapping[bytes, bytes]) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive), or None for
    no header, another scheme or an empty token."""
    scheme, _, raw = headers.get(b"authorization", b"").partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return raw.decode("latin-1").strip() or None


class Authenticator(Protocol):
    """Verifies one kind of credential from the request headers (names lower-cased)."""

    async def authenticate(self, headers: Mapping[bytes, bytes]) -> Identity | None:
        """The verified Identity; None when the headers carry no credential of this kind
        (so another authenticator may try); raises InvalidCredentials when they carry one
        that fails."""
        ...


def _unauthenticated(reason: str, message: str) -> EdgeError:
    challenge = _CHALLENGE if reason == "CREDENTIALS_MISSING" else _INVALID_CHALLENGE
    return EdgeError(401, grpc.StatusCode.UNAUTHENTICATED, reason, message, headers=[challenge])


class AccessGate:
    """Decides one request's access from its route's levels and the configured authenticators."""

    def __init__(self, authenticators: Mapping[int, Authenticator] | None = None) -> None:
        self._authenticators = dict(authenticators or {})

    async def check(
        self, allow: Collection[int], headers: Mapping[bytes, bytes]
    ) -> Identity | None:
        """None for a PUBLIC route, else the caller's verified Identity.

        Raises EdgeError 401 (with WWW-Authenticate) for missing or invalid credentials, and
        403 for valid credentials of a kind the route does not accept (a user's token on a
        merchant-only route).
        """
        if PUBLIC in allow:
            return None
        if b"authorization" not in headers:
            raise _unauthenticated(
                "CREDENTIALS_MISSING", "this route needs an Authorization header"
            )
        try:
            for level in sorted(allow):
                authenticator = self._authenticators.get(level)
                if authenticator is not None:
                    identity = await authenticator.authenticate(headers)
                    if identity is not None:
                        return identity
            for level, authenticator in self._authenticators.items():
                if level not in allow and await authenticator.authenticate(headers) is not None:
                    raise EdgeError(
                        403,
                        grpc.StatusCode.PERMISSION_DENIED,
                        "ACCESS_LEVEL_NOT_ALLOWED",
                        "these credentials are valid but not accepted by this route",
                    )
        except InvalidCredentials as exc:
            raise _unauthenticated(exc.reason, str(exc) or "invalid credentials") from None
        raise _unauthenticated(
            "CREDENTIALS_INVALID", "expected `Authorization: Bearer <access token or API key>`"
        )

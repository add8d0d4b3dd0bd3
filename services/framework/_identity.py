"""Who is calling: metadata keys, the per-RPC Caller, and the access decision."""

from __future__ import annotations

import contextvars
import dataclasses
import hmac
from collections.abc import Collection, Mapping

from paynow.api.v1 import annotations_pb2

from ._errors import PermissionDenied, Unauthenticated

__all__ = [
    "CALLER_SERVICE_KEY",
    "INTERNAL_TOKEN_KEY",
    "MERCHANT_ID_KEY",
    "REQUEST_ID_KEY",
    "USER_ID_KEY",
    "Caller",
    "authorize",
    "current_caller",
    "current_request_id",
    "resolve_caller",
]

REQUEST_ID_KEY = "x-request-id"
INTERNAL_TOKEN_KEY = "x-paynow-internal-token"  # noqa: S105 - a header name, not a secret
CALLER_SERVICE_KEY = "x-paynow-caller-service"
USER_ID_KEY = "x-paynow-user-id"
MERCHANT_ID_KEY = "x-paynow-merchant-id"
_IDENTITY_KEYS = (CALLER_SERVICE_KEY, USER_ID_KEY, MERCHANT_ID_KEY)

PUBLIC = annotations_pb2.ACCESS_PUBLIC
USER = annotations_pb2.ACCESS_USER
MERCHANT = annotations_pb2.ACCESS_MERCHANT
INTERNAL = annotations_pb2.ACCESS_INTERNAL


@dataclasses.dataclass(frozen=True)
class Caller:
    """The verified identity of the current RPC's caller; all None for an anonymous call."""

    service: str | None = None
    user_id: str | None = None
    merchant_id: str | None = None

    @property
    def is_internal(self) -> bool:
        """True when another PayNow service called with the internal credential."""
        return self.service is not None


ANONYMOUS = Caller()
_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("paynow_caller", default=ANONYMOUS)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "paynow_request_id", default=None
)
# The served call's absolute deadline on the time.monotonic() clock, for outgoing calls.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "paynow_deadline", default=None
)


def current_caller() -> Caller:
    """The caller of the RPC being served (anonymous outside an RPC or before access checks)."""
    return _caller.get()


def current_request_id() -> str | None:
    """The request id of the RPC being served, or None outside an RPC."""
    return _request_id.get()


def resolve_caller(metadata: Mapping[str, str], internal_token: str) -> Caller:
    """Believe identity metadata only alongside a valid internal token.

    Raises Unauthenticated for a wrong token, for identity headers without a token, and for a
    token without `x-paynow-caller-service`.
    """
    token = metadata.get(INTERNAL_TOKEN_KEY)
    if token is None:
        if any(key in metadata for key in _IDENTITY_KEYS):
            raise Unauthenticated("identity metadata without the internal credential")
        return ANONYMOUS
    # Constant-time, so the credential cannot be guessed byte by byte from response times.
    if not hmac.compare_digest(token.encode(), internal_token.encode()):
        raise Unauthenticated("invalid internal credential")
    service = metadata.get(CALLER_SERVICE_KEY)
    if not service:
        raise Unauthenticated(f"{CALLER_SERVICE_KEY} is required with the internal credential")
    return Caller(service, metadata.get(USER_ID_KEY), metadata.get(MERCHANT_ID_KEY))


def authorize(caller: Caller, allow: Collection[int]) -> None:
    """Check `caller` against a method's allowed access levels (any one suffices).

    Raises Unauthenticated when an unauthenticated caller needs credentials, PermissionDenied
    when an authenticated caller is the wrong kind.
    """
    if PUBLIC in allow:
        return
    if (
        (USER in allow and caller.user_id)
        or (MERCHANT in allow and caller.merchant_id)
        or (INTERNAL in allow and caller.is_internal)
    ):
        return
    if not caller.is_internal:
        raise Unauthenticated()
    raise PermissionDenied()

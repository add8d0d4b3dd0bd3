"""Errors at the edge: the one gRPC→HTTP table, and google.rpc.Status JSON bodies.

    EdgeError                 an error the edge itself answers (404, 405, 400, 413, 401, …)
    backend_reply()           a backend's AioRpcError → (HTTP status, Status JSON, Retry-After)
    backend_error()           the same without Retry-After

Every error body has one shape, `{"code", "message", "details": [{"@type", …}]}`, whether the
edge or a backend made it; the edge's own carry an ErrorInfo in the `paynow.edge` domain.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "DOMAIN",
    "EdgeError",
    "backend_error",
    "backend_reply",
    "http_status",
    "reason_phrase",
    "retry_after_s",
    "status_body",
]

DOMAIN = "paynow.edge"
_C = grpc.StatusCode
# grpc-gateway's runtime.HTTPStatusFromCode, entry for entry, so clients written against it
# (or Envoy's transcoder) see the same statuses. FAILED_PRECONDITION is 400, not 412: 412
# belongs to HTTP conditional requests (If-Match), which these calls never take.
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    _C.OK: 200,
    _C.CANCELLED: 499,
    _C.UNKNOWN: 500,
    _C.INVALID_ARGUMENT: 400,
    _C.DEADLINE_EXCEEDED: 504,
    _C.NOT_FOUND: 404,
    _C.ALREADY_EXISTS: 409,
    _C.PERMISSION_DENIED: 403,
    _C.UNAUTHENTICATED: 401,
    _C.RESOURCE_EXHAUSTED: 429,
    _C.FAILED_PRECONDITION: 400,
    _C.ABORTED: 409,
    _C.OUT_OF_RANGE: 400,
    _C.UNIMPLEMENTED: 501,
    _C.INTERNAL: 500,
    _C.UNAVAILABLE: 503,
    _C.DATA_LOSS: 500,
}
_CODE_NUMBER = {code: code.value[0] for code in grpc.StatusCode}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC code (grpc-gateway's table; 500 for anything unknown)."""
    return _HTTP_STATUS.get(code, 500)


def reason_phrase(status: int) -> str:
    """The status line's phrase; 499 is nginx's, which Python's HTTPStatus lacks."""
    if status == 499:
        return "Client Closed Request"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class EdgeError(Exception):
    """An error the edge answers itself, before or instead of calling a backend."""

    def __init__(
        self,
        status: int,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        details: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.headers = list(headers)
        self.details = list(details)

    def body(self) -> bytes:
        """The Status JSON: ErrorInfo first, then any extra details (BadRequest, …)."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata
        )
        status = status_pb2.Status(code=_CODE_NUMBER[self.code], message=self.message)
        for detail in (info, *self.details):
            status.details.add().Pack(detail)
        return status_body(status, descriptor_pool.Default())


def _detail_json(detail: any_pb2.Any, pool: descriptor_pool.DescriptorPool) -> Any:
    try:
        return json_format.MessageToDict(detail, descriptor_pool=pool)
    except (TypeError, KeyError, json_format.Error):
        # A detail type missing from the descriptor set: pass it on undecoded rather than
        # lose the whole error.
        return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}


def status_dict(status: status_pb2.Status, pool: descriptor_pool.DescriptorPool) -> Any:
    """The Status as a JSON-ready dict, always with `code`, `message` and `details`."""
    return {
        "code": status.code,
        "message": status.message,
        "details": [_detail_json(d, pool) for d in status.details],
    }


def status_body(status: status_pb2.Status, pool: descriptor_pool.DescriptorPool) -> bytes:
    """The Status as compact JSON bytes."""
    return json.dumps(status_dict(status, pool), separators=(",", ":")).encode()


# gRPC's own wording ("Stream removed (Deadline Exceeded)") describes its internals, not what
# the client should do.
_TRANSPORT_MESSAGES = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "the request did not finish before its deadline",
    grpc.StatusCode.UNAVAILABLE: "the service is unavailable; retry later",
    grpc.StatusCode.CANCELLED: "the request was cancelled",
}


def backend_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The backend's google.rpc.Status: from `grpc-status-details-bin` when it sent one
    (that is where details live), else rebuilt from the code and message."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # noqa: S110 - a corrupt trailer falls back below
                pass
    # No details: gRPC itself ended the call (deadline, unreachable backend, reset), not a
    # PayNow service. Every error body still carries an ErrorInfo, so say that here.
    code = error.code()
    status = status_pb2.Status(
        code=_CODE_NUMBER.get(code, 2),
        message=_TRANSPORT_MESSAGES.get(
            code, error.details() or code.name.lower().replace("_", " ")
        ),
    )
    info = error_details_pb2.ErrorInfo(reason=code.name, domain="paynow.edge")
    status.details.add().Pack(info)
    return status


def retry_after_s(status: status_pb2.Status) -> int | None:
    """Whole seconds of the Status's RetryInfo delay, rounded up (a client told 0.2 s must
    not retry at once); None without a RetryInfo."""
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            nanos: int = info.retry_delay.ToNanoseconds()
            return max(0, -(-nanos // 1_000_000_000))
    return None


# RESOURCE_EXHAUSTED means two things. A caller's own budget spent (auth's
# TOO_MANY_ATTEMPTS, a quota) is the caller's doing: 429, as the table says. A service at its
# concurrency bound (the framework's OVERLOADED) is the server's state, not the caller's:
# 503, which is what RFC 9110 and load balancers take as "try again or elsewhere".
_OVERLOAD_REASONS = frozenset({"OVERLOADED"})


def _overloaded(status: status_pb2.Status) -> bool:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason in _OVERLOAD_REASONS
    return False


def backend_reply(
    error: grpc.aio.AioRpcError, pool: descriptor_pool.DescriptorPool
) -> tuple[int, bytes, int | None]:
    """The HTTP status, Status JSON body and Retry-After seconds (None: no RetryInfo) for a
    failed backend call; a backend's OVERLOADED is 503, not 429."""
    status = backend_status(error)
    code = error.code()
    http = http_status(code)
    if code == _C.RESOURCE_EXHAUSTED and _overloaded(status):
        http = 503
    return http, status_body(status, pool), retry_after_s(status)


def backend_error(
    error: grpc.aio.AioRpcError, pool: descriptor_pool.DescriptorPool
) -> tuple[int, bytes]:
    """The HTTP status and Status JSON body for a failed backend call."""
    status, body, _ = backend_reply(error, pool)
    return status, body

"""Domain errors and their one mapping to a `google.rpc.Status` (AIP-193).

```
DomainError                 gRPC code            details added
├── InvalidArgument         INVALID_ARGUMENT     BadRequest field violations
│   └── InvalidPageToken
├── NotFound                NOT_FOUND
├── AlreadyExists           ALREADY_EXISTS
├── FailedPrecondition      FAILED_PRECONDITION  PreconditionFailure
│   └── IdempotencyKeyReused
├── Aborted                 ABORTED
│   └── RequestInProgress
├── PermissionDenied        PERMISSION_DENIED
├── Unauthenticated         UNAUTHENTICATED
├── ResourceExhausted       RESOURCE_EXHAUSTED   RetryInfo
├── Unavailable             UNAVAILABLE          RetryInfo when retry_after_s is given
│   └── StorageUnavailable
├── Unimplemented           UNIMPLEMENTED        (a declared RPC not written yet)
└── Internal                INTERNAL             (raised only by the error middleware)
```

Every status carries ErrorInfo first: the reason, the service's domain and the error's facts
as lowerCamel metadata. Only the error middleware calls `to_status`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "Aborted",
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "IdempotencyKeyReused",
    "Internal",
    "InvalidArgument",
    "InvalidPageToken",
    "NotFound",
    "PermissionDenied",
    "RequestInProgress",
    "ResourceExhausted",
    "StorageUnavailable",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "to_status",
]

_REASON = re.compile(r"^[A-Z][A-Z0-9_]{0,62}$")


def _lower_camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class DomainError(Exception):
    """Base of every error a use case raises; keyword arguments become ErrorInfo metadata."""

    reason: ClassVar[str] = ""
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    message: ClassVar[str] = "request failed"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Fail at import time, not at the first error in production.
        if cls.reason and not _REASON.match(cls.reason):
            raise TypeError(f"{cls.__name__}.reason must be UPPER_SNAKE, <= 63 chars")

    def __init__(self, detail: str | None = None, /, **facts: object) -> None:
        self.detail = detail or self.message
        self.facts = facts
        super().__init__(self.detail)

    def metadata(self) -> dict[str, str]:
        """The facts as ErrorInfo metadata: lowerCamel keys, string values."""
        return {_lower_camel(key): str(value) for key, value in self.facts.items()}

    def extra_details(self) -> list[object]:
        """Details beyond ErrorInfo; subclasses add BadRequest, RetryInfo and so on."""
        return []


class InvalidArgument(DomainError):
    """The request is malformed; `violations` lists `(field, description)` pairs."""

    reason = "INVALID_REQUEST"
    code = grpc.StatusCode.INVALID_ARGUMENT
    message = "the request is invalid"

    def __init__(
        self,
        detail: str | None = None,
        /,
        *,
        violations: Sequence[tuple[str, str]] = (),
        **facts: object,
    ) -> None:
        super().__init__(detail, **facts)
        self.violations = list(violations)

    def extra_details(self) -> list[object]:
        if not self.violations:
            return []
        bad = error_details_pb2.BadRequest()
        for field, description in self.violations:
            bad.field_violations.add(field=field, description=description)
        return [bad]


class InvalidPageToken(InvalidArgument):
    reason = "INVALID_PAGE_TOKEN"
    message = "the page token is malformed or belongs to another query"


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    message = "not found"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    message = "already exists"


class FailedPrecondition(DomainError):
    """The system is not in a state to do this; `violations` are (type, subject, description)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    message = "the operation is not allowed in the current state"

    def __init__(
        self,
        detail: str | None = None,
        /,
        *,
        violations: Sequence[tuple[str, str, str]] = (),
        **facts: object,
    ) -> None:
        super().__init__(detail, **facts)
        self.violations = list(violations)

    def extra_details(self) -> list[object]:
        if not self.violations:
            return []
        failure = error_details_pb2.PreconditionFailure()
        for type_, subject, description in self.violations:
            failure.violations.add(type=type_, subject=subject, description=description)
        return [failure]


class IdempotencyKeyReused(FailedPrecondition):
    reason = "IDEMPOTENCY_KEY_REUSED"
    message = "the idempotency key was used before with other parameters"


class Aborted(DomainError):
    code = grpc.StatusCode.ABORTED
    message = "the operation was aborted by a concurrent change"


class RequestInProgress(Aborted):
    reason = "REQUEST_IN_PROGRESS"
    message = "a request with the same idempotency key is still running"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"
    code = grpc.StatusCode.PERMISSION_DENIED
    message = "the caller may not call this method"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"
    code = grpc.StatusCode.UNAUTHENTICATED
    message = "the call lacks valid credentials"


class _Retryable(DomainError):
    def __init__(
        self, detail: str | None = None, /, *, retry_after_s: float | None = None, **facts: object
    ) -> None:
        super().__init__(detail, **facts)
        self.retry_after_s = retry_after_s

    def extra_details(self) -> list[object]:
        if self.retry_after_s is None:
            return []
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after_s * 1e9))
        return [error_details_pb2.RetryInfo(retry_delay=delay)]


class ResourceExhausted(_Retryable):
    """Out of capacity; RetryInfo tells the client when to retry (default 1 s)."""

    reason = "OVERLOADED"
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    message = "the service is overloaded; retry later"

    def __init__(
        self, detail: str | None = None, /, *, retry_after_s: float = 1.0, **facts: object
    ) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **facts)


class Unavailable(_Retryable):
    code = grpc.StatusCode.UNAVAILABLE
    message = "the service is unavailable; retry later"


class StorageUnavailable(Unavailable):
    reason = "STORAGE_UNAVAILABLE"
    message = "the database cannot be reached right now; retry later"


class Unimplemented(DomainError):
    reason = "NOT_IMPLEMENTED"
    code = grpc.StatusCode.UNIMPLEMENTED
    message = "this method is not implemented yet"


class Internal(DomainError):
    """An unexpected fault; only the error middleware raises it, with the request id."""

    reason = "INTERNAL"
    code = grpc.StatusCode.INTERNAL
    message = "internal error"


def to_status(error: DomainError, domain: str) -> status_pb2.Status:
    """Build the `google.rpc.Status` for `error`, ErrorInfo first, then its extra details."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=domain, metadata=error.metadata()
    )
    status = status_pb2.Status(code=error.code.value[0], message=error.detail)
    for detail in [info, *error.extra_details()]:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status

"""Reading another service's error where it is received, to translate it into our own.

A downstream error is never passed through (it would name the wrong domain, and an
unexpected one becomes INTERNAL); the caller reads its reason and decides what it means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["RemoteError", "remote_error"]


@dataclass(frozen=True)
class RemoteError:
    """What a failed call said: its code, ErrorInfo reason and metadata, field violations."""

    code: grpc.StatusCode
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[tuple[str, str]] = field(default_factory=list)


def remote_error(error: grpc.aio.AioRpcError) -> RemoteError:
    """Unpack a failed call's google.rpc.Status (an empty reason if it carries none)."""
    status = rpc_status.from_call(error)
    reason, metadata, violations = "", {}, []
    for detail in status.details if status is not None else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad):
            violations = [(v.field, v.description) for v in bad.field_violations]
    return RemoteError(error.code(), reason, metadata, violations)

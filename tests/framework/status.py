"""Unpack a failed call's google.rpc.Status, the way a client of PayNow would."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

DETAIL_TYPES = {
    t.DESCRIPTOR.full_name: t
    for t in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.RetryInfo,
    )
}


def unpack(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, Any, list[Any]]:
    """Return (code, ErrorInfo, other details) of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status"
    details = []
    for packed in status.details:
        detail = DETAIL_TYPES[packed.TypeName()]()
        packed.Unpack(detail)
        details.append(detail)
    info, *rest = details
    assert isinstance(info, error_details_pb2.ErrorInfo), "ErrorInfo must come first"
    return error.code(), info, rest

"""The gRPC → HTTP table and the Status JSON every error body shares."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import descriptor_pool, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from services.edge.errors import EdgeError, backend_error, backend_reply, http_status

_C = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (_C.OK, 200),
        (_C.CANCELLED, 499),
        (_C.UNKNOWN, 500),
        (_C.INVALID_ARGUMENT, 400),
        (_C.DEADLINE_EXCEEDED, 504),
        (_C.NOT_FOUND, 404),
        (_C.ALREADY_EXISTS, 409),
        (_C.PERMISSION_DENIED, 403),
        (_C.UNAUTHENTICATED, 401),
        (_C.RESOURCE_EXHAUSTED, 429),
        (_C.FAILED_PRECONDITION, 400),
        (_C.ABORTED, 409),
        (_C.OUT_OF_RANGE, 400),
        (_C.UNIMPLEMENTED, 501),
        (_C.INTERNAL, 500),
        (_C.UNAVAILABLE, 503),
        (_C.DATA_LOSS, 500),
    ],
)
def test_code_maps_as_grpc_gateway_does(code: grpc.StatusCode, status: int) -> None:
    """Every code has grpc-gateway's HTTPStatusFromCode status."""
    assert http_status(code) == status


def test_edge_error_body_is_status_with_error_info() -> None:
    """An edge-made error is a Status whose first detail is an ErrorInfo in paynow.edge."""
    error = EdgeError(404, _C.NOT_FOUND, "ROUTE_NOT_FOUND", "no route", metadata={"path": "/x"})
    assert json.loads(error.body()) == {
        "code": 5,
        "message": "no route",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ROUTE_NOT_FOUND",
                "domain": "paynow.edge",
                "metadata": {"path": "/x"},
            }
        ],
    }


def _rpc_error(trailers: tuple[tuple[str, bytes], ...]) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        _C.FAILED_PRECONDITION, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), "declined"
    )


def test_backend_details_are_unpacked_from_the_trailer() -> None:
    """grpc-status-details-bin becomes `details` with `@type`, and the status is 400."""
    status = status_pb2.Status(code=9, message="insufficient funds")
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason="INSUFFICIENT_FUNDS", domain="d"))
    http, body = backend_error(
        _rpc_error((("grpc-status-details-bin", status.SerializeToString()),)),
        descriptor_pool.Default(),
    )
    assert http == 400
    assert json.loads(body)["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "INSUFFICIENT_FUNDS",
            "domain": "d",
        }
    ]


def test_backend_error_without_details_keeps_code_and_message() -> None:
    """No trailer: the Status keeps the call's code and message and gains an ErrorInfo."""
    _, body = backend_error(_rpc_error(()), descriptor_pool.Default())
    assert json.loads(body) == {
        "code": 9,
        "message": "declined",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "FAILED_PRECONDITION",
                "domain": "paynow.edge",
            }
        ],
    }


def test_unresolvable_detail_type_is_passed_through_encoded() -> None:
    """A detail type the pool lacks still reaches the client, as base64, not as a crash."""
    status = status_pb2.Status(code=9, message="m")
    status.details.add(type_url="type.googleapis.com/x.Unknown", value=b"\x01")
    _, body = backend_error(
        _rpc_error((("grpc-status-details-bin", status.SerializeToString()),)),
        descriptor_pool.Default(),
    )
    assert json.loads(body)["details"] == [
        {"@type": "type.googleapis.com/x.Unknown", "value": "AQ=="}
    ]


def _exhausted(reason: str, delay_nanos: int | None) -> grpc.aio.AioRpcError:
    status = status_pb2.Status(code=8, message="slow down")
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain="d"))
    if delay_nanos is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(delay_nanos)
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(_C.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), trailers, "x")


def test_retry_info_becomes_retry_after_rounded_up() -> None:
    """A RetryInfo of 1.2 s is `Retry-After: 2`: never sooner than the backend asked."""
    _, _, retry_after = backend_reply(
        _exhausted("TOO_MANY_ATTEMPTS", 1_200_000_000), descriptor_pool.Default()
    )
    assert retry_after == 2


def test_an_error_without_retry_info_has_no_retry_after() -> None:
    """No RetryInfo detail, no Retry-After."""
    assert backend_reply(_exhausted("QUOTA", None), descriptor_pool.Default())[2] is None


def test_a_spent_budget_stays_429() -> None:
    """RESOURCE_EXHAUSTED for the caller's own budget (TOO_MANY_ATTEMPTS) is 429."""
    assert (
        backend_reply(_exhausted("TOO_MANY_ATTEMPTS", 10**9), descriptor_pool.Default())[0] == 429
    )


def test_an_overloaded_backend_is_503() -> None:
    """RESOURCE_EXHAUSTED OVERLOADED (a service at its concurrency bound) is 503."""
    assert backend_reply(_exhausted("OVERLOADED", 10**9), descriptor_pool.Default())[:1] == (503,)

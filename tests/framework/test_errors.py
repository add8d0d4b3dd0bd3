"""Domain errors reach clients as google.rpc.Status with ErrorInfo and the right details."""

from __future__ import annotations

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2

from paynow.account.v1 import account_service_pb2
from paynow.account.v1 import errors_pb2 as account_errors
from paynow.auth.v1 import errors_pb2 as auth_errors
from paynow.merchant.v1 import errors_pb2 as merchant_errors
from services import framework
from services.framework import DomainError, to_status
from tests.framework.fakes import ACCOUNT_ID, InsufficientFunds
from tests.framework.status import unpack

FRAMEWORK_ERRORS = [
    cls
    for cls in vars(framework).values()
    if isinstance(cls, type) and issubclass(cls, DomainError) and cls.reason
]


async def close_with(stub, key):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CloseAccount(account_service_pb2.CloseAccountRequest(id=ACCOUNT_ID, etag=key))
    return unpack(caught.value)


@pytest.mark.parametrize(
    ("key", "code", "reason"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
        ("not_found", grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"),
        ("exists", grpc.StatusCode.ALREADY_EXISTS, "EMAIL_ALREADY_EXISTS"),
        ("funds", grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"),
        ("etag", grpc.StatusCode.ABORTED, "ETAG_MISMATCH"),
        ("denied", grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
        ("unauthenticated", grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        ("overloaded", grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED"),
        ("storage", grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE"),
    ],
)
async def test_each_error_class_gets_its_code_reason_and_domain(
    user_stub, key, code, reason
) -> None:
    """Every DomainError subclass answers with its gRPC code and ErrorInfo reason and domain."""
    got_code, info, _ = await close_with(user_stub, key)
    assert (got_code, info.reason, info.domain) == (code, reason, "paynow.account")


async def test_error_facts_become_lower_camel_metadata(user_stub) -> None:
    """Keyword facts of an error become ErrorInfo metadata with lowerCamel keys and str values."""
    _, info, _ = await close_with(user_stub, "funds")
    assert dict(info.metadata) == {
        "accountId": ACCOUNT_ID,
        "balanceMinor": "5",
        "requestedMinor": "10",
    }


async def test_invalid_argument_carries_bad_request(user_stub) -> None:
    """InvalidArgument adds BadRequest with its field violations."""
    _, _, details = await close_with(user_stub, "invalid")
    assert details == [
        error_details_pb2.BadRequest(
            field_violations=[{"field": "amount_minor", "description": "must be positive"}]
        )
    ]


async def test_failed_precondition_carries_precondition_failure(user_stub) -> None:
    """FailedPrecondition adds PreconditionFailure with (type, subject, description)."""
    _, _, details = await close_with(user_stub, "funds")
    (failure,) = details
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    assert (failure.violations[0].type, failure.violations[0].subject) == ("BALANCE", ACCOUNT_ID)


async def test_resource_exhausted_carries_retry_info(user_stub) -> None:
    """ResourceExhausted adds RetryInfo with the delay it was given."""
    _, _, details = await close_with(user_stub, "overloaded")
    assert details == [
        error_details_pb2.RetryInfo(retry_delay={"seconds": 2, "nanos": 500_000_000})
    ]


async def test_unavailable_adds_retry_info_only_when_given(user_stub) -> None:
    """Unavailable adds RetryInfo only when a retry delay was given."""
    _, _, with_delay = await close_with(user_stub, "storage")
    _, _, without = await close_with(user_stub, "unavailable_plain")
    assert [type(d) for d in with_delay] == [error_details_pb2.RetryInfo]
    assert without == []


async def test_unexpected_exception_is_internal_with_request_id(user_stub) -> None:
    """An unexpected exception answers INTERNAL naming the request id, and no traceback."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await user_stub.CloseAccount(
            account_service_pb2.CloseAccountRequest(id=ACCOUNT_ID, etag="crash"),
            metadata=(("x-request-id", "req-crash-1"),),
        )
    code, info, _ = unpack(caught.value)
    assert code == grpc.StatusCode.INTERNAL
    assert (info.reason, info.metadata["requestId"]) == ("INTERNAL", "req-crash-1")
    assert caught.value.details() == "internal error (request id req-crash-1)"
    assert "boom" not in caught.value.details()


async def test_unexpected_exception_logs_its_traceback_at_error(user_stub) -> None:
    """The traceback of an unexpected exception goes to the log at error level."""
    with structlog.testing.capture_logs() as logs:
        await close_with(user_stub, "crash")
    (crash,) = [line for line in logs if line["event"] == "rpc_crashed"]
    assert crash["log_level"] == "error"
    assert crash["exc_info"] is True


async def test_reason_missing_from_enum_is_logged_and_still_answered(user_stub) -> None:
    """A reason missing from the ErrorReason enum is logged as a bug; the code still goes out."""
    with structlog.testing.capture_logs() as logs:
        code, info, _ = await close_with(user_stub, "unknown_reason")
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_IN_THE_ENUM")
    assert any(line["event"] == "unknown_error_reason" for line in logs)


async def test_servicer_abort_passes_through_untouched(user_stub) -> None:
    """A servicer's own context.abort reaches the client as it was sent."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await user_stub.CloseAccount(
            account_service_pb2.CloseAccountRequest(id=ACCOUNT_ID, etag="abort")
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert caught.value.details() == "aborted by the servicer"


def test_error_info_is_always_the_first_detail() -> None:
    """to_status puts ErrorInfo first, before any other detail."""
    status = to_status(
        InsufficientFunds(violations=[("BALANCE", "acc", "low")]), domain="paynow.account"
    )
    assert [d.TypeName() for d in status.details] == [
        "google.rpc.ErrorInfo",
        "google.rpc.PreconditionFailure",
    ]


@pytest.mark.parametrize("enum", [account_errors, auth_errors, merchant_errors])
@pytest.mark.parametrize("error", FRAMEWORK_ERRORS, ids=lambda cls: cls.__name__)
def test_framework_reasons_exist_in_every_service_enum(enum, error) -> None:
    """Every reason the framework raises is a value of every service's ErrorReason enum."""
    assert f"ERROR_REASON_{error.reason}" in enum.ErrorReason.keys()  # noqa: SIM118


def test_reason_must_be_upper_snake() -> None:
    """A subclass with a malformed reason fails when it is defined, not when it is raised."""
    with pytest.raises(TypeError):
        type("Bad", (DomainError,), {"reason": "bad-reason"})


async def test_a_method_not_written_yet_answers_unimplemented(user_stub) -> None:
    """A declared RPC the servicer lacks is UNIMPLEMENTED (NOT_IMPLEMENTED), not INTERNAL."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await user_stub.ListAccounts(account_service_pb2.ListAccountsRequest())
    code, info, _ = unpack(caught.value)
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert info.reason == "NOT_IMPLEMENTED"

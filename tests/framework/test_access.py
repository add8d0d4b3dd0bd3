"""Identity is believed only with the internal credential, and each method's access option holds."""

from __future__ import annotations

import grpc
import pytest

from paynow.account.v1 import account_service_pb2, account_service_pb2_grpc
from services.framework.testing import caller_metadata
from tests.framework.fakes import ACCOUNT_ID, MERCHANT_ID, USER_ID
from tests.framework.status import unpack

GET = account_service_pb2.GetAccountRequest(id=ACCOUNT_ID)
CREATE = account_service_pb2.CreateAccountRequest(
    kind=1, email="a@example.com", display_name="A", currency_code="EUR", idempotency_key="k1"
)


async def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    code, info, _ = unpack(caught.value)
    return code, info.reason


async def test_user_method_serves_a_user_and_sees_the_caller(user_stub) -> None:
    """A USER method answers an internal caller acting for a user, who is current_caller()."""
    account = await user_stub.GetAccount(GET)
    assert (account.owner_id, account.email) == (USER_ID, "tests")


async def test_identity_without_the_internal_credential_is_refused(server) -> None:
    """Identity metadata without the internal token answers UNAUTHENTICATED."""
    stub = server.stub(
        account_service_pb2_grpc.AccountServiceStub, caller_metadata(None, user_id=USER_ID)
    )
    assert await refused(stub.GetAccount(GET)) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )


async def test_a_wrong_internal_credential_is_refused(server) -> None:
    """A wrong internal token answers UNAUTHENTICATED."""
    metadata = (("x-paynow-internal-token", "not-the-token"), ("x-paynow-caller-service", "x"))
    stub = server.stub(account_service_pb2_grpc.AccountServiceStub, metadata)
    code, _ = await refused(stub.CreateAccount(CREATE))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_internal_method_refuses_callers_without_the_credential(stub) -> None:
    """An INTERNAL method refuses an anonymous caller with UNAUTHENTICATED."""
    code, _ = await refused(stub.CreateAccount(CREATE))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_internal_method_serves_callers_with_the_credential(server, settings) -> None:
    """An INTERNAL method answers a service that presents the internal token."""
    stub = server.stub(account_service_pb2_grpc.AccountServiceStub, caller_metadata(settings))
    account = await stub.CreateAccount(CREATE)
    assert account.display_name == "A"


async def test_user_method_refuses_merchant_callers(server, settings) -> None:
    """A USER method answers PERMISSION_DENIED to a caller acting for a merchant."""
    stub = server.stub(
        account_service_pb2_grpc.AccountServiceStub,
        caller_metadata(settings, merchant_id=MERCHANT_ID),
    )
    assert await refused(stub.GetAccount(GET)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )


async def test_user_method_refuses_anonymous_callers(stub) -> None:
    """A USER method answers UNAUTHENTICATED to a caller with no credentials at all."""
    code, _ = await refused(stub.GetAccount(GET))
    assert code == grpc.StatusCode.UNAUTHENTICATED

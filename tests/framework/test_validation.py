"""Requests are checked against their protovalidate rules before the handler runs."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.framework._identity import USER
from services.framework._policy import build_policies
from services.framework.testing import caller_metadata
from tests.framework.fakes import ACCOUNT_ID, SERVICE
from tests.framework.status import unpack


def violations_of(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    code, info, details = unpack(error)
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    (bad_request,) = details
    return [(v.field, v.description) for v in bad_request.field_violations]


def update(display_name: str, *paths: str) -> account_service_pb2.UpdateAccountRequest:
    return account_service_pb2.UpdateAccountRequest(
        account=account_pb2.Account(id=ACCOUNT_ID, display_name=display_name),
        update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
    )


async def test_validation_errors_carry_bad_request_field_violations(user_stub) -> None:
    """A field rule violation answers INVALID_ARGUMENT with BadRequest naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await user_stub.GetAccount(account_service_pb2.GetAccountRequest(id="nope"))
    assert violations_of(caught.value) == [
        ("id", "does not match regex pattern `^acc_[0-9a-z]{26}$`")
    ]


async def test_nested_violations_are_named_by_their_field_path(user_stub) -> None:
    """A violation inside a message field is named by its dotted path."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await user_stub.UpdateAccount(update("", "display_name"))
    assert [field for field, _ in violations_of(caught.value)] == ["account.display_name"]


def test_update_mask_counts_only_masked_paths_of_the_resource() -> None:
    """Only violations under masked paths of the resource field count; others always count."""
    policy = build_policies([SERVICE], USER)["/paynow.account.v1.AccountService/UpdateAccount"]
    assert policy.resource_field == "account"
    masked = ["display_name"]
    assert policy.counts("account.display_name", masked)
    assert not policy.counts("account.email", masked)
    assert policy.counts("update_mask", masked)
    assert policy.counts("account", masked)


async def test_the_mask_itself_is_validated(user_stub) -> None:
    """A path outside the mask's allowed set is a violation of update_mask."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await user_stub.UpdateAccount(update("ok", "etag"))
    assert [field for field, _ in violations_of(caught.value)] == ["update_mask"]


async def test_message_rules_are_reported_without_a_field(server, settings) -> None:
    """A message-level CEL rule's violation is reported with an empty field path."""
    stub = server.stub(account_service_pb2_grpc.AccountServiceStub, caller_metadata(settings))
    request = account_service_pb2.CreateAccountRequest(
        kind=1, display_name="A", currency_code="EUR", idempotency_key="k"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateAccount(request)
    assert [field for field, _ in violations_of(caught.value)] == [""]

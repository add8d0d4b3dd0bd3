"""Every request message with field rules rejects a bad value and accepts a good one."""

from __future__ import annotations

from typing import Any

import protovalidate
import pytest
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor_pool import Default as default_pool

# Imported so their messages are in the default pool.
from paynow.account.v1 import account_service_pb2  # noqa: F401
from paynow.auth.v1 import auth_service_pb2  # noqa: F401
from paynow.merchant.v1 import (
    api_key_service_pb2,  # noqa: F401
    merchant_service_pb2,  # noqa: F401
    payment_service_pb2,  # noqa: F401
)

from .descriptors import paynow_files

ACC = "acc_" + "0" * 26
ACC2 = "acc_" + "1" * 26
MER = "mer_" + "a" * 26
PAY = "pay_" + "b" * 26
KEY = "key_" + "c" * 26
PASSWORD = "correct horse battery staple"

# message full name -> (a valid request as proto3 JSON, {what is wrong: a bad variant})
# A bad variant is the valid request with these top-level keys replaced.
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {
    "paynow.account.v1.GetAccountRequest": (
        {"id": ACC},
        {"empty id": {"id": ""}, "wrong prefix": {"id": MER}},
    ),
    "paynow.account.v1.ListAccountsRequest": (
        {"pageSize": 10},
        {"negative page size": {"pageSize": -1}, "huge token": {"pageToken": "x" * 513}},
    ),
    "paynow.account.v1.UpdateAccountRequest": (
        {"account": {"id": ACC, "displayName": "Ada"}, "updateMask": "displayName"},
        {
            "empty display name": {"account": {"id": ACC, "displayName": ""}},
            "mask names an immutable field": {"updateMask": "email"},
        },
    ),
    "paynow.account.v1.CloseAccountRequest": (
        {"id": ACC, "etag": "W/1"},
        {"bad id": {"id": "acc_short"}, "etag too long": {"etag": "e" * 65}},
    ),
    "paynow.account.v1.DepositRequest": (
        {"id": ACC, "amountMinor": "1000", "currencyCode": "EUR", "idempotencyKey": "k-1"},
        {
            "zero amount": {"amountMinor": "0"},
            "negative amount": {"amountMinor": "-5"},
            "absurd amount": {"amountMinor": "100000000001"},
            "lowercase currency": {"currencyCode": "eur"},
            "missing key": {"idempotencyKey": ""},
            "key with a space": {"idempotencyKey": "a b"},
        },
    ),
    "paynow.account.v1.ListTransactionsRequest": (
        {"accountId": ACC, "pageSize": 0},
        {"bad account": {"accountId": "nope"}, "negative page size": {"pageSize": -3}},
    ),
    "paynow.account.v1.CreateAccountRequest": (
        {
            "kind": "ACCOUNT_KIND_PERSONAL",
            "email": "ada@example.com",
            "displayName": "Ada",
            "currencyCode": "EUR",
            "idempotencyKey": "reg_1",
        },
        {
            "no kind": {"kind": "ACCOUNT_KIND_UNSPECIFIED"},
            "bad email": {"email": "not-an-email"},
            "personal without email": {"email": ""},
            "settlement without owner": {"kind": "ACCOUNT_KIND_MERCHANT_SETTLEMENT"},
            "bad owner": {"ownerId": "mer_1"},
        },
    ),
    "paynow.account.v1.TransferRequest": (
        {
            "fromAccountId": ACC,
            "toAccountId": ACC2,
            "amountMinor": "250",
            "currencyCode": "EUR",
            "memo": "payment",
            "idempotencyKey": PAY,
        },
        {
            "same account twice": {"toAccountId": ACC},
            "zero amount": {"amountMinor": "0"},
            "bad currency": {"currencyCode": "EURO"},
            "memo too long": {"memo": "m" * 201},
        },
    ),
    "paynow.account.v1.LookupTransferRequest": (
        {"idempotencyKey": PAY},
        {"empty key": {"idempotencyKey": ""}, "key with a space": {"idempotencyKey": "a b"}},
    ),
    "paynow.auth.v1.RegisterRequest": (
        {"email": "ada@example.com", "password": PASSWORD, "displayName": "Ada"},
        {
            "bad email": {"email": "ada"},
            "short password": {"password": "short"},
            "password too long": {"password": "p" * 257},
            "empty name": {"displayName": ""},
            "bad currency": {"currencyCode": "12"},
        },
    ),
    "paynow.auth.v1.LoginRequest": (
        {"email": "ada@example.com", "password": PASSWORD},
        {"empty email": {"email": ""}, "empty password": {"password": ""}},
    ),
    "paynow.auth.v1.RefreshRequest": (
        {"refreshToken": "rt_abc"},
        {"empty token": {"refreshToken": ""}, "huge token": {"refreshToken": "t" * 201}},
    ),
    "paynow.auth.v1.LogoutRequest": (
        {"refreshToken": "rt_abc"},
        {"empty token": {"refreshToken": ""}},
    ),
    "paynow.auth.v1.ChangePasswordRequest": (
        {"currentPassword": PASSWORD, "newPassword": PASSWORD + " again"},
        {"short new password": {"newPassword": "short"}, "no current": {"currentPassword": ""}},
    ),
    "paynow.merchant.v1.CreateMerchantRequest": (
        {"merchant": {"displayName": "Tea shop", "currencyCode": "EUR"}, "idempotencyKey": "m1"},
        {
            "no name": {"merchant": {"currencyCode": "EUR"}},
            "bad currency": {"merchant": {"displayName": "Tea", "currencyCode": "E"}},
            "no key": {"idempotencyKey": ""},
        },
    ),
    "paynow.merchant.v1.GetMerchantRequest": (
        {"id": MER},
        {"wrong prefix": {"id": ACC}},
    ),
    "paynow.merchant.v1.ListMerchantsRequest": (
        {"pageSize": 100},
        {"negative page size": {"pageSize": -1}},
    ),
    "paynow.merchant.v1.CreateApiKeyRequest": (
        {"merchantId": MER, "displayName": "production"},
        {"bad merchant": {"merchantId": "mer_"}, "empty label": {"displayName": ""}},
    ),
    "paynow.merchant.v1.ListApiKeysRequest": (
        {"merchantId": MER},
        {"bad merchant": {"merchantId": PAY}, "negative page size": {"pageSize": -1}},
    ),
    "paynow.merchant.v1.RevokeApiKeyRequest": (
        {"id": KEY},
        {"wrong prefix": {"id": MER}},
    ),
    "paynow.merchant.v1.VerifyApiKeyRequest": (
        {"secret": "sk_" + "x" * 43},
        {"empty secret": {"secret": ""}, "huge secret": {"secret": "s" * 201}},
    ),
    "paynow.merchant.v1.CreatePaymentRequest": (
        {
            "amountMinor": "1999",
            "currencyCode": "EUR",
            "description": "tea",
            "idempotencyKey": "o1",
        },
        {
            "zero amount": {"amountMinor": "0"},
            "long description": {"description": "d" * 501},
            "no key": {"idempotencyKey": ""},
        },
    ),
    "paynow.merchant.v1.GetPaymentRequest": ({"id": PAY}, {"wrong prefix": {"id": KEY}}),
    "paynow.merchant.v1.ListPaymentsRequest": (
        {"state": "PAYMENT_STATE_SUCCEEDED"},
        {"undefined state": {"state": 42}, "negative page size": {"pageSize": -1}},
    ),
    "paynow.merchant.v1.ListMyPaymentsRequest": ({}, {"negative page size": {"pageSize": -9}}),
    "paynow.merchant.v1.ApprovePaymentRequest": (
        {"id": PAY, "idempotencyKey": "approve-1"},
        {"bad id": {"id": "pay_X"}, "no key": {"idempotencyKey": ""}},
    ),
    "paynow.merchant.v1.DeclinePaymentRequest": ({"id": PAY}, {"bad id": {"id": ""}}),
    "paynow.merchant.v1.RefundPaymentRequest": (
        {"id": PAY, "amountMinor": "500", "idempotencyKey": "r1"},
        {"negative amount": {"amountMinor": "-1"}, "long reason": {"reason": "r" * 201}},
    ),
    "paynow.merchant.v1.WatchPaymentRequest": ({"id": PAY}, {"bad id": {"id": MER}}),
}

validator = protovalidate.Validator()


def _has_rules(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """True if the message, or a message field inside it, carries buf.validate options."""
    if descriptor.full_name in seen:
        return False
    proto_options = descriptor.GetOptions().ListFields()
    if any(field.full_name.startswith("buf.validate") for field, _ in proto_options):
        return True
    for field in descriptor.fields:
        if any(f.full_name.startswith("buf.validate") for f, _ in field.GetOptions().ListFields()):
            return True
        if field.message_type is not None and _has_rules(
            field.message_type, seen | {descriptor.full_name}
        ):
            return True
    return False


def _request_messages_with_rules() -> list[str]:
    names = []
    for file in paynow_files():
        for message in file.message_type:
            if not message.name.endswith("Request"):
                continue
            full_name = f"{file.package}.{message.name}"
            if _has_rules(default_pool().FindMessageTypeByName(full_name)):
                names.append(full_name)
    return sorted(names)


def _build(full_name: str, values: dict[str, Any]) -> Any:
    cls = message_factory.GetMessageClass(default_pool().FindMessageTypeByName(full_name))
    return json_format.ParseDict(values, cls())


def test_every_request_with_rules_has_examples() -> None:
    """Adding a rule-bearing request without examples here fails, naming the message."""
    missing = sorted(set(_request_messages_with_rules()) - set(EXAMPLES))
    assert not missing, f"add examples for: {', '.join(missing)}"


@pytest.mark.parametrize("full_name", sorted(EXAMPLES))
def test_valid_request_is_accepted(full_name: str) -> None:
    """The example request passes every rule."""
    good, _ = EXAMPLES[full_name]
    assert validator.collect_violations(_build(full_name, good)) == []


BAD_CASES = [
    (full_name, what, change)
    for full_name, (_, bad) in sorted(EXAMPLES.items())
    for what, change in bad.items()
]


@pytest.mark.parametrize(
    ("full_name", "what", "change"),
    BAD_CASES,
    ids=[f"{name.rsplit('.', 1)[1]}-{what}" for name, what, _ in BAD_CASES],
)
def test_bad_value_is_rejected(full_name: str, what: str, change: dict[str, Any]) -> None:
    """Each bad variant breaks at least one rule."""
    good, _ = EXAMPLES[full_name]
    violations = validator.collect_violations(_build(full_name, {**good, **change}))
    assert violations, f"{full_name} accepted a request with {what}"

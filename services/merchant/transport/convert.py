"""Domain objects to protos, and the caller's identity, for the merchant servicers."""

from __future__ import annotations

from paynow.merchant.v1 import merchant_pb2, payment_pb2
from services.framework import Unauthenticated, current_caller, to_timestamp
from services.merchant.domain import (
    ApiKey,
    ApiKeyState,
    Merchant,
    MerchantState,
    Payment,
    PaymentState,
    Refund,
    Viewer,
)

__all__ = [
    "api_key_to_proto",
    "merchant_id",
    "merchant_to_proto",
    "payment_to_proto",
    "refund_to_proto",
    "state_from_proto",
    "user_id",
    "viewer",
]

_MERCHANT_STATES = {
    MerchantState.ACTIVE: merchant_pb2.MERCHANT_STATE_ACTIVE,
    MerchantState.DISABLED: merchant_pb2.MERCHANT_STATE_DISABLED,
}
_KEY_STATES = {
    ApiKeyState.ACTIVE: merchant_pb2.API_KEY_STATE_ACTIVE,
    ApiKeyState.REVOKED: merchant_pb2.API_KEY_STATE_REVOKED,
}
_PAYMENT_STATES = {
    state: payment_pb2.PaymentState.Value(f"PAYMENT_STATE_{state.value}") for state in PaymentState
}


def merchant_to_proto(merchant: Merchant) -> merchant_pb2.Merchant:
    return merchant_pb2.Merchant(
        id=merchant.id,
        display_name=merchant.display_name,
        owner_id=merchant.owner_id,
        currency_code=merchant.currency_code,
        settlement_account_id=merchant.settlement_account_id,
        state=_MERCHANT_STATES[merchant.state],
        create_time=to_timestamp(merchant.create_time),
    )


def api_key_to_proto(key: ApiKey) -> merchant_pb2.ApiKey:
    return merchant_pb2.ApiKey(
        id=key.id,
        merchant_id=key.merchant_id,
        display_name=key.display_name,
        key_prefix=key.key_prefix,
        state=_KEY_STATES[key.state],
        create_time=to_timestamp(key.create_time),
        revoke_time=to_timestamp(key.revoke_time),
    )


def payment_to_proto(payment: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        id=payment.id,
        merchant_id=payment.merchant_id,
        payer_account_id=payment.payer_account_id,
        amount_minor=payment.amount_minor,
        currency_code=payment.currency_code,
        description=payment.description,
        state=_PAYMENT_STATES[payment.state],
        amount_refunded_minor=payment.amount_refunded_minor,
        failure_reason=payment.failure_reason,
        create_time=to_timestamp(payment.create_time),
        expire_time=to_timestamp(payment.expire_time),
        approve_time=to_timestamp(payment.approve_time),
        update_time=to_timestamp(payment.update_time),
    )


def refund_to_proto(refund: Refund) -> payment_pb2.Refund:
    return payment_pb2.Refund(
        id=refund.id,
        payment_id=refund.payment_id,
        amount_minor=refund.amount_minor,
        currency_code=refund.currency_code,
        reason=refund.reason,
        create_time=to_timestamp(refund.create_time),
    )


def state_from_proto(value: int) -> PaymentState | None:
    """The stored state to filter by; None (every state) for PAYMENT_STATE_UNSPECIFIED."""
    for state, number in _PAYMENT_STATES.items():
        if number == value:
            return state
    return None


def user_id() -> str:
    """The signed-in person calling; the access middleware already required one."""
    caller = current_caller().user_id
    if not caller:
        raise Unauthenticated("this method needs a signed-in user")
    return caller


def merchant_id() -> str:
    """The merchant calling with an API key; the access middleware already required one."""
    caller = current_caller().merchant_id
    if not caller:
        raise Unauthenticated("this method needs a merchant API key")
    return caller


def viewer() -> Viewer:
    caller = current_caller()
    return Viewer(user_id=caller.user_id, merchant_id=caller.merchant_id)

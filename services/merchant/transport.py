"""gRPC servicers of the merchant service."""

from __future__ import annotations

from paynow.merchant.v1 import (
    api_key_service_pb2_grpc,
    merchant_service_pb2_grpc,
    payment_service_pb2_grpc,
)

__all__ = ["ApiKeyServicer", "MerchantServicer", "PaymentServicer"]


class MerchantServicer(merchant_service_pb2_grpc.MerchantServiceServicer):
    """paynow.merchant.v1.MerchantService: proto ↔ domain translation, nothing else.

    No method is implemented yet: each one answers UNIMPLEMENTED through the generated base
    class until its issue lands.
    """


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    """paynow.merchant.v1.PaymentService: proto ↔ domain translation, nothing else.

    No method is implemented yet: each one answers UNIMPLEMENTED through the generated base
    class until its issue lands.
    """


class ApiKeyServicer(api_key_service_pb2_grpc.ApiKeyServiceServicer):
    """paynow.merchant.v1.ApiKeyService: proto ↔ domain translation, nothing else.

    No method is implemented yet: each one answers UNIMPLEMENTED through the generated base
    class until its issue lands.
    """

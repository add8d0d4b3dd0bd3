"""PaymentService: proto ↔ domain."""

from __future__ import annotations

from collections.abc import AsyncIterator

from grpc import aio

from paynow.merchant.v1 import payment_pb2, payment_service_pb2, payment_service_pb2_grpc
from services.framework import page_request
from services.merchant.domain import NewPayment, Payments, Refunds

from .convert import (
    merchant_id,
    payment_to_proto,
    refund_to_proto,
    state_from_proto,
    user_id,
    viewer,
)

__all__ = ["PaymentServicer"]

pb = payment_service_pb2
_DEADLINE_MARGIN_S = 0.25


class PaymentServicer(payment_service_pb2_grpc.PaymentServiceServicer):
    def __init__(self, payments: Payments, refunds: Refunds) -> None:
        self._payments = payments
        self._refunds = refunds

    async def CreatePayment(
        self, request: pb.CreatePaymentRequest, context: aio.ServicerContext
    ) -> payment_pb2.Payment:
        payment = await self._payments.create(
            merchant_id(),
            NewPayment(
                amount_minor=request.amount_minor,
                currency_code=request.currency_code,
                description=request.description,
                idempotency_key=request.idempotency_key,
            ),
        )
        return payment_to_proto(payment)

    async def GetPayment(
        self, request: pb.GetPaymentRequest, context: aio.ServicerContext
    ) -> payment_pb2.Payment:
        return payment_to_proto(await self._payments.get(viewer(), request.id))

    async def ListPayments(
        self, request: pb.ListPaymentsRequest, context: aio.ServicerContext
    ) -> pb.ListPaymentsResponse:
        merchant = merchant_id()
        query = {"merchant": merchant, "state": request.state}
        page = page_request(request.page_size, request.page_token, query)
        found = await self._payments.list_for_merchant(
            merchant, state_from_proto(request.state), page
        )
        return pb.ListPaymentsResponse(
            payments=[payment_to_proto(p) for p in found.payments],
            next_page_token=found.next_page_token,
        )

    async def ListMyPayments(
        self, request: pb.ListMyPaymentsRequest, context: aio.ServicerContext
    ) -> pb.ListMyPaymentsResponse:
        payer = user_id()
        page = page_request(request.page_size, request.page_token, {"payer": payer})
        found = await self._payments.list_for_payer(payer, page)
        return pb.ListMyPaymentsResponse(
            payments=[payment_to_proto(p) for p in found.payments],
            next_page_token=found.next_page_token,
        )

    async def ApprovePayment(
        self, request: pb.ApprovePaymentRequest, context: aio.ServicerContext
    ) -> payment_pb2.Payment:
        return payment_to_proto(await self._payments.approve(user_id(), request.id))

    async def DeclinePayment(
        self, request: pb.DeclinePaymentRequest, context: aio.ServicerContext
    ) -> payment_pb2.Payment:
        return payment_to_proto(await self._payments.decline(user_id(), request.id))

    async def RefundPayment(
        self, request: pb.RefundPaymentRequest, context: aio.ServicerContext
    ) -> pb.RefundPaymentResponse:
        refunded = await self._refunds.refund(
            merchant_id(), request.id, request.amount_minor, request.reason, request.idempotency_key
        )
        return pb.RefundPaymentResponse(
            payment=payment_to_proto(refunded.payment), refund=refund_to_proto(refunded.refund)
        )

    async def WatchPayment(
        self, request: pb.WatchPaymentRequest, context: aio.ServicerContext
    ) -> AsyncIterator[payment_pb2.Payment]:
        remaining = context.time_remaining()
        # Leave a margin for the last message to reach the client before the deadline.
        for_s = None if remaining is None else max(remaining - _DEADLINE_MARGIN_S, 0.0)
        async for payment in self._payments.watch(viewer(), request.id, for_s=for_s):
            yield payment_to_proto(payment)

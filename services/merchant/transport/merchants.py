"""MerchantService: proto ↔ domain."""

from __future__ import annotations

from grpc import aio

from paynow.merchant.v1 import merchant_pb2, merchant_service_pb2, merchant_service_pb2_grpc
from services.framework import page_request
from services.merchant.domain import Merchants

from .convert import merchant_to_proto, user_id

__all__ = ["MerchantServicer"]


class MerchantServicer(merchant_service_pb2_grpc.MerchantServiceServicer):
    def __init__(self, merchants: Merchants) -> None:
        self._merchants = merchants

    async def CreateMerchant(
        self, request: merchant_service_pb2.CreateMerchantRequest, context: aio.ServicerContext
    ) -> merchant_pb2.Merchant:
        merchant = await self._merchants.create(
            user_id(),
            request.merchant.display_name,
            request.merchant.currency_code,
            request.idempotency_key,
        )
        return merchant_to_proto(merchant)

    async def GetMerchant(
        self, request: merchant_service_pb2.GetMerchantRequest, context: aio.ServicerContext
    ) -> merchant_pb2.Merchant:
        return merchant_to_proto(await self._merchants.get(user_id(), request.id))

    async def ListMerchants(
        self, request: merchant_service_pb2.ListMerchantsRequest, context: aio.ServicerContext
    ) -> merchant_service_pb2.ListMerchantsResponse:
        owner = user_id()
        page = page_request(request.page_size, request.page_token, {"owner": owner})
        found = await self._merchants.list(owner, page)
        return merchant_service_pb2.ListMerchantsResponse(
            merchants=[merchant_to_proto(m) for m in found.merchants],
            next_page_token=found.next_page_token,
        )

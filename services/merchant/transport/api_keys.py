"""ApiKeyService: proto ↔ domain."""

from __future__ import annotations

from grpc import aio

from paynow.merchant.v1 import api_key_service_pb2, api_key_service_pb2_grpc, merchant_pb2
from services.framework import page_request
from services.merchant.domain import ApiKeys

from .convert import api_key_to_proto, user_id

__all__ = ["ApiKeyServicer"]


class ApiKeyServicer(api_key_service_pb2_grpc.ApiKeyServiceServicer):
    def __init__(self, api_keys: ApiKeys) -> None:
        self._keys = api_keys

    async def CreateApiKey(
        self, request: api_key_service_pb2.CreateApiKeyRequest, context: aio.ServicerContext
    ) -> api_key_service_pb2.CreateApiKeyResponse:
        issued = await self._keys.create(user_id(), request.merchant_id, request.display_name)
        return api_key_service_pb2.CreateApiKeyResponse(
            api_key=api_key_to_proto(issued.key), secret=issued.secret
        )

    async def ListApiKeys(
        self, request: api_key_service_pb2.ListApiKeysRequest, context: aio.ServicerContext
    ) -> api_key_service_pb2.ListApiKeysResponse:
        query = {"merchant": request.merchant_id}
        page = page_request(request.page_size, request.page_token, query)
        found = await self._keys.list(user_id(), request.merchant_id, page)
        return api_key_service_pb2.ListApiKeysResponse(
            api_keys=[api_key_to_proto(k) for k in found.keys],
            next_page_token=found.next_page_token,
        )

    async def RevokeApiKey(
        self, request: api_key_service_pb2.RevokeApiKeyRequest, context: aio.ServicerContext
    ) -> merchant_pb2.ApiKey:
        return api_key_to_proto(await self._keys.revoke(user_id(), request.id))

    async def VerifyApiKey(
        self, request: api_key_service_pb2.VerifyApiKeyRequest, context: aio.ServicerContext
    ) -> api_key_service_pb2.VerifyApiKeyResponse:
        verified = await self._keys.verify(request.secret)
        return api_key_service_pb2.VerifyApiKeyResponse(
            merchant_id=verified.merchant_id,
            api_key_id=verified.api_key_id,
            key_prefix=verified.key_prefix,
        )

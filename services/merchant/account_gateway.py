"""The account service as the merchant domain sees it: the AccountGateway port over gRPC.

Account's errors are translated here, where they are received: a business refusal becomes
TransferRefused (the domain decides what it means for a payment), and anything that leaves
the outcome unknown becomes AccountServiceUnavailable.
"""

from __future__ import annotations

import asyncio

import grpc

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.framework import ServiceSettings, connect, outgoing_timeout, remote_error

from .domain import AccountServiceUnavailable, TransferRefused, UnsupportedCurrency

__all__ = ["GrpcAccountGateway"]

# Account's reasons that refuse a movement for good; the payment is then declined.
_REFUSALS = frozenset(
    {"INSUFFICIENT_FUNDS", "CURRENCY_MISMATCH", "ACCOUNT_NOT_ACTIVE", "ACCOUNT_NOT_FOUND"}
)
_PAUSE_S = 0.05


def _reason(error: grpc.aio.AioRpcError) -> str:
    return remote_error(error).reason


class GrpcAccountGateway:
    def __init__(self, address: str, settings: ServiceSettings) -> None:
        self._address = address
        self._settings = settings

    @property
    def _stub(self) -> account_service_pb2_grpc.AccountServiceStub:
        # Looked up per call: a channel binds to the running event loop, which does not
        # exist yet when the app is wired (connect() caches, so this is a dictionary lookup).
        return connect(
            self._address, account_service_pb2_grpc.AccountServiceStub, settings=self._settings
        )

    async def create_settlement_account(
        self, *, owner_id: str, display_name: str, currency_code: str, creation_key: str
    ) -> str:
        request = account_service_pb2.CreateAccountRequest(
            kind=account_pb2.ACCOUNT_KIND_MERCHANT_SETTLEMENT,
            display_name=display_name,
            currency_code=currency_code,
            owner_id=owner_id,
            idempotency_key=creation_key,
        )
        try:
            account = await self._stub.CreateAccount(request)
        except grpc.aio.AioRpcError as error:
            if _reason(error) == "UNSUPPORTED_CURRENCY":
                raise UnsupportedCurrency(currency_code=currency_code) from None
            raise AccountServiceUnavailable(retry_after_s=1.0) from error
        return str(account.id)

    async def transfer(
        self,
        *,
        from_account_id: str,
        to_account_id: str,
        amount_minor: int,
        currency_code: str,
        memo: str,
        key: str,
    ) -> str:
        request = account_service_pb2.TransferRequest(
            from_account_id=from_account_id,
            to_account_id=to_account_id,
            amount_minor=amount_minor,
            currency_code=currency_code,
            memo=memo,
            idempotency_key=key,
        )
        while True:
            try:
                response = await self._stub.Transfer(request)
            except grpc.aio.AioRpcError as error:
                reason = _reason(error)
                if reason in _REFUSALS:
                    raise TransferRefused(reason) from None
                # The same key is still held by an earlier attempt (a concurrent duplicate,
                # or one that died with account): its lease ends with its deadline, so keep
                # asking while this call's own deadline allows.
                if reason == "REQUEST_IN_PROGRESS" and outgoing_timeout(60.0) > _PAUSE_S:
                    await asyncio.sleep(_PAUSE_S)
                    continue
                raise AccountServiceUnavailable(retry_after_s=1.0) from error
            return str(response.transfer.id)

    async def lookup_transfer(self, key: str) -> str | None:
        request = account_service_pb2.LookupTransferRequest(idempotency_key=key)
        try:
            transfer = await self._stub.LookupTransfer(request)
        except grpc.aio.AioRpcError as error:
            if _reason(error) == "TRANSFER_NOT_FOUND":
                return None
            raise AccountServiceUnavailable(retry_after_s=1.0) from error
        return str(transfer.id)

"""AccountServicer: translates between protos and the account domain, and nothing else.

No try/except here: domain errors reach the framework's error middleware, which builds the
google.rpc.Status.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from grpc import aio

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.framework import Unauthenticated, current_caller, page_request, to_timestamp

from .domain import (
    Account,
    AccountKind,
    Accounts,
    AccountState,
    EntryKind,
    Ledger,
    LedgerEntry,
    Transfer,
)
from .domain.accounts import NewAccount
from .domain.ledger import Movement

__all__ = ["AccountServicer"]

_KIND_TO_PROTO = {
    AccountKind.PERSONAL: account_pb2.ACCOUNT_KIND_PERSONAL,
    AccountKind.MERCHANT_SETTLEMENT: account_pb2.ACCOUNT_KIND_MERCHANT_SETTLEMENT,
}
_KIND_FROM_PROTO = {value: kind for kind, value in _KIND_TO_PROTO.items()}
_STATE_TO_PROTO = {
    AccountState.ACTIVE: account_pb2.ACCOUNT_STATE_ACTIVE,
    AccountState.SUSPENDED: account_pb2.ACCOUNT_STATE_SUSPENDED,
    AccountState.CLOSED: account_pb2.ACCOUNT_STATE_CLOSED,
}
_ENTRY_TO_PROTO = {
    EntryKind.DEPOSIT: account_pb2.TRANSACTION_KIND_DEPOSIT,
    EntryKind.TRANSFER_OUT: account_pb2.TRANSACTION_KIND_TRANSFER_OUT,
    EntryKind.TRANSFER_IN: account_pb2.TRANSACTION_KIND_TRANSFER_IN,
}


def account_to_proto(account: Account) -> account_pb2.Account:
    return account_pb2.Account(
        id=account.id,
        email=account.email,
        display_name=account.display_name,
        kind=_KIND_TO_PROTO[account.kind],
        state=_STATE_TO_PROTO[account.state],
        currency_code=account.currency_code,
        balance_minor=account.balance_minor,
        owner_id=account.owner_id,
        create_time=to_timestamp(account.create_time),
        update_time=to_timestamp(account.update_time),
        etag=account.etag,
    )


def entry_to_proto(entry: LedgerEntry) -> account_pb2.Transaction:
    return account_pb2.Transaction(
        id=entry.id,
        account_id=entry.account_id,
        kind=_ENTRY_TO_PROTO[entry.kind],
        amount_minor=entry.amount_minor,
        currency_code=entry.currency_code,
        balance_after_minor=entry.balance_after_minor,
        counterparty_account_id=entry.counterparty_account_id,
        transfer_id=entry.transfer_id,
        memo=entry.memo,
        create_time=to_timestamp(entry.create_time),
    )


def transfer_to_proto(transfer: Transfer) -> account_pb2.Transfer:
    return account_pb2.Transfer(
        id=transfer.id,
        from_account_id=transfer.from_account_id,
        to_account_id=transfer.to_account_id,
        amount_minor=transfer.amount_minor,
        currency_code=transfer.currency_code,
        memo=transfer.memo,
        idempotency_key=transfer.idempotency_key,
        create_time=to_timestamp(transfer.create_time),
    )


def _transfer_scope() -> str:
    # Keys are per calling service, so merchant's `pay_…` keys cannot collide with another
    # service's, and no service can look up another's transfers.
    return f"transfer:{current_caller().service}"


def _user_id() -> str:
    # The access middleware has already required a user for USER methods; this guards the
    # type and a misconfigured access option alike.
    user_id = current_caller().user_id
    if not user_id:
        raise Unauthenticated("this method needs a signed-in user")
    return user_id


def _optional_time(stamp: timestamp_pb2.Timestamp, is_set: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if is_set else None


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    def __init__(self, accounts: Accounts, ledger: Ledger) -> None:
        self._accounts = accounts
        self._ledger = ledger

    async def GetAccount(
        self, request: account_service_pb2.GetAccountRequest, context: aio.ServicerContext
    ) -> account_pb2.Account:
        return account_to_proto(await self._accounts.get(_user_id(), request.id))

    async def ListAccounts(
        self, request: account_service_pb2.ListAccountsRequest, context: aio.ServicerContext
    ) -> account_service_pb2.ListAccountsResponse:
        owner = _user_id()
        page = page_request(request.page_size, request.page_token, {"owner": owner})
        found = await self._accounts.list(owner, page)
        return account_service_pb2.ListAccountsResponse(
            accounts=[account_to_proto(a) for a in found.accounts],
            next_page_token=found.next_page_token,
        )

    async def UpdateAccount(
        self, request: account_service_pb2.UpdateAccountRequest, context: aio.ServicerContext
    ) -> account_pb2.Account:
        # protovalidate allows only `display_name` in the mask; an empty mask means every
        # updatable field (AIP-134), which is the same single field.
        account = await self._accounts.rename(
            _user_id(), request.account.id, request.account.display_name, request.account.etag
        )
        return account_to_proto(account)

    async def CloseAccount(
        self, request: account_service_pb2.CloseAccountRequest, context: aio.ServicerContext
    ) -> account_pb2.Account:
        return account_to_proto(await self._accounts.close(_user_id(), request.id, request.etag))

    async def Deposit(
        self, request: account_service_pb2.DepositRequest, context: aio.ServicerContext
    ) -> account_service_pb2.DepositResponse:
        deposited = await self._ledger.deposit(
            _user_id(),
            request.id,
            request.amount_minor,
            request.currency_code,
            request.idempotency_key,
        )
        return account_service_pb2.DepositResponse(
            account=account_to_proto(deposited.account),
            transaction=entry_to_proto(deposited.entry),
        )

    async def ListTransactions(
        self, request: account_service_pb2.ListTransactionsRequest, context: aio.ServicerContext
    ) -> account_service_pb2.ListTransactionsResponse:
        start = _optional_time(request.start_time, request.HasField("start_time"))
        end = _optional_time(request.end_time, request.HasField("end_time"))
        query = {"account": request.account_id, "start": start, "end": end}
        page = page_request(request.page_size, request.page_token, query)
        found = await self._ledger.history(_user_id(), request.account_id, start, end, page)
        return account_service_pb2.ListTransactionsResponse(
            transactions=[entry_to_proto(e) for e in found.entries],
            next_page_token=found.next_page_token,
        )

    async def CreateAccount(
        self, request: account_service_pb2.CreateAccountRequest, context: aio.ServicerContext
    ) -> account_pb2.Account:
        account = await self._accounts.create(
            NewAccount(
                kind=_KIND_FROM_PROTO[request.kind],
                email=request.email,
                display_name=request.display_name,
                currency_code=request.currency_code,
                owner_id=request.owner_id,
                creation_key=request.idempotency_key,
            )
        )
        return account_to_proto(account)

    async def Transfer(
        self, request: account_service_pb2.TransferRequest, context: aio.ServicerContext
    ) -> account_service_pb2.TransferResponse:
        moved = await self._ledger.transfer(
            Movement(
                from_account_id=request.from_account_id,
                to_account_id=request.to_account_id,
                amount_minor=request.amount_minor,
                currency_code=request.currency_code,
                memo=request.memo,
                idempotency_scope=_transfer_scope(),
                idempotency_key=request.idempotency_key,
            )
        )
        return account_service_pb2.TransferResponse(
            transfer=transfer_to_proto(moved.transfer), created=moved.created
        )

    async def LookupTransfer(
        self, request: account_service_pb2.LookupTransferRequest, context: aio.ServicerContext
    ) -> account_pb2.Transfer:
        found = await self._ledger.lookup(_transfer_scope(), request.idempotency_key)
        return transfer_to_proto(found)

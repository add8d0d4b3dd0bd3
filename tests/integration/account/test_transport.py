"""Every AccountService RPC over a real gRPC server, on SQLite and on PostgreSQL.

The fixture checks the ledger after every test: each balance equals the sum of its
entries and all balances (external funding included) sum to zero.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from grpc_status import rpc_status

from paynow.account.v1 import account_pb2, account_service_pb2
from services.framework import new_id

from .harness import AccountHarness

pb = account_service_pb2


def reason_of(error: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


async def expect_error(call: object, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code
    assert reason_of(caught.value) == reason
    return caught.value


def transfer(source: str, target: str, amount: int, key: str | None = None) -> pb.TransferRequest:
    return pb.TransferRequest(
        from_account_id=source,
        to_account_id=target,
        amount_minor=amount,
        currency_code="EUR",
        memo="test",
        idempotency_key=key or new_id("pay"),
    )


async def test_get_returns_the_callers_account(account: AccountHarness) -> None:
    """GetAccount answers with the resource, balance and etag."""
    ada = await account.person(deposit_minor=250)
    got = await account.as_user(ada.id).GetAccount(pb.GetAccountRequest(id=ada.id))
    assert (got.balance_minor, got.state, got.owner_id) == (
        250,
        account_pb2.ACCOUNT_STATE_ACTIVE,
        ada.id,
    )


async def test_another_users_account_is_not_found(account: AccountHarness) -> None:
    """User B asking for user A's account learns nothing: NOT_FOUND."""
    ada, bob = await account.person(), await account.person()
    await expect_error(
        account.as_user(bob.id).GetAccount(pb.GetAccountRequest(id=ada.id)),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )


async def test_list_accounts_pages_the_callers_accounts(account: AccountHarness) -> None:
    """ListAccounts shows the wallet and settlement accounts the caller owns, nobody else's."""
    ada = await account.person()
    await account.person()
    settlement = await account.as_service().CreateAccount(
        pb.CreateAccountRequest(
            kind=account_pb2.ACCOUNT_KIND_MERCHANT_SETTLEMENT,
            display_name="Tea shop",
            currency_code="EUR",
            owner_id=ada.id,
            idempotency_key=new_id("mer"),
        )
    )
    first = await account.as_user(ada.id).ListAccounts(pb.ListAccountsRequest(page_size=1))
    second = await account.as_user(ada.id).ListAccounts(
        pb.ListAccountsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [a.id for a in first.accounts] == [ada.id]
    assert [a.id for a in second.accounts] == [settlement.id]
    assert second.next_page_token == ""


async def test_create_account_is_idempotent_and_emails_unique(account: AccountHarness) -> None:
    """The same key returns the same account; another key with the same email is refused."""
    request = pb.CreateAccountRequest(
        kind=account_pb2.ACCOUNT_KIND_PERSONAL,
        email=f"{new_id('usr')}@Example.com",
        display_name="Ada",
        currency_code="EUR",
        idempotency_key=new_id("reg"),
    )
    stub = account.as_service("auth")
    first, again = await stub.CreateAccount(request), await stub.CreateAccount(request)
    assert first.id == again.id
    other = pb.CreateAccountRequest()
    other.CopyFrom(request)
    other.email = request.email.lower()
    other.idempotency_key = new_id("reg")
    await expect_error(
        stub.CreateAccount(other), grpc.StatusCode.ALREADY_EXISTS, "EMAIL_ALREADY_EXISTS"
    )


async def test_update_renames_and_refuses_a_stale_etag(account: AccountHarness) -> None:
    """UpdateAccount changes display_name; an old etag is ABORTED (ETAG_MISMATCH)."""
    ada = await account.person()
    stub = account.as_user(ada.id)
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    renamed = await stub.UpdateAccount(
        pb.UpdateAccountRequest(
            account=account_pb2.Account(id=ada.id, display_name="Ada L.", etag=ada.etag),
            update_mask=mask,
        )
    )
    assert renamed.display_name == "Ada L."
    await expect_error(
        stub.UpdateAccount(
            pb.UpdateAccountRequest(
                account=account_pb2.Account(id=ada.id, display_name="Ada", etag=ada.etag),
                update_mask=mask,
            )
        ),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )


async def test_update_ignores_output_only_fields(account: AccountHarness) -> None:
    """A balance sent in an update changes nothing (AIP-203)."""
    ada = await account.person()
    renamed = await account.as_user(ada.id).UpdateAccount(
        pb.UpdateAccountRequest(
            account=account_pb2.Account(id=ada.id, display_name="Rich", balance_minor=10**9),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert renamed.balance_minor == 0


async def test_close_refuses_a_balance_then_closes_when_empty(account: AccountHarness) -> None:
    """CloseAccount is FAILED_PRECONDITION with money left, and works at zero."""
    ada = await account.person(deposit_minor=10)
    await expect_error(
        account.as_user(ada.id).CloseAccount(pb.CloseAccountRequest(id=ada.id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_NOT_EMPTY",
    )
    empty = await account.person()
    closed = await account.as_user(empty.id).CloseAccount(pb.CloseAccountRequest(id=empty.id))
    assert closed.state == account_pb2.ACCOUNT_STATE_CLOSED


async def test_deposit_is_idempotent_per_key(account: AccountHarness) -> None:
    """The same key replays the first answer; the same key with another amount is refused."""
    ada = await account.person()
    stub = account.as_user(ada.id)
    request = pb.DepositRequest(
        id=ada.id, amount_minor=700, currency_code="EUR", idempotency_key="t1"
    )
    first, again = await stub.Deposit(request), await stub.Deposit(request)
    assert first == again
    request.amount_minor = 701
    await expect_error(
        stub.Deposit(request), grpc.StatusCode.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED"
    )
    assert (await stub.GetAccount(pb.GetAccountRequest(id=ada.id))).balance_minor == 700


async def test_deposit_in_the_wrong_currency_is_refused(account: AccountHarness) -> None:
    """A USD deposit into a EUR wallet is CURRENCY_MISMATCH; an unknown currency is refused."""
    ada = await account.person()
    stub = account.as_user(ada.id)
    await expect_error(
        stub.Deposit(
            pb.DepositRequest(id=ada.id, amount_minor=1, currency_code="USD", idempotency_key="a")
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "CURRENCY_MISMATCH",
    )
    await expect_error(
        stub.Deposit(
            pb.DepositRequest(id=ada.id, amount_minor=1, currency_code="XTS", idempotency_key="b")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "UNSUPPORTED_CURRENCY",
    )


async def test_transfer_refuses_to_overdraw_with_a_precondition_failure(
    account: AccountHarness,
) -> None:
    """INSUFFICIENT_FUNDS carries the balance in ErrorInfo and a PreconditionFailure."""
    from google.rpc import error_details_pb2

    source, target = await account.person(deposit_minor=100), await account.person()
    error = await expect_error(
        account.as_service().Transfer(transfer(source.id, target.id, 101)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
    )
    status = rpc_status.from_call(error)
    assert status is not None
    info, failure = error_details_pb2.ErrorInfo(), error_details_pb2.PreconditionFailure()
    status.details[0].Unpack(info)
    assert status.details[1].Unpack(failure)
    assert info.metadata["balanceMinor"] == "100"
    assert failure.violations[0].subject == f"accounts/{source.id}"


async def test_transfer_moves_money_once_per_key(account: AccountHarness) -> None:
    """A retried Transfer returns the first transfer with created=false."""
    source, target = await account.person(deposit_minor=100), await account.person()
    stub = account.as_service()
    first = await stub.Transfer(transfer(source.id, target.id, 60, key="pay_once"))
    again = await stub.Transfer(transfer(source.id, target.id, 60, key="pay_once"))
    assert first.transfer.id == again.transfer.id
    got = await account.as_user(target.id).GetAccount(pb.GetAccountRequest(id=target.id))
    assert got.balance_minor == 60


async def test_transfer_keys_are_scoped_per_calling_service(account: AccountHarness) -> None:
    """Two services using the same key move money twice: their keys are separate."""
    source, target = await account.person(deposit_minor=100), await account.person()
    await account.as_service("merchant").Transfer(transfer(source.id, target.id, 10, key="k"))
    await account.as_service("payouts").Transfer(transfer(source.id, target.id, 10, key="k"))
    got = await account.as_user(target.id).GetAccount(pb.GetAccountRequest(id=target.id))
    assert got.balance_minor == 20


async def test_transfer_into_a_closed_account_is_refused(account: AccountHarness) -> None:
    """A closed account moves no money (ACCOUNT_NOT_ACTIVE)."""
    source, closed = await account.person(deposit_minor=100), await account.person()
    await account.as_user(closed.id).CloseAccount(pb.CloseAccountRequest(id=closed.id))
    await expect_error(
        account.as_service().Transfer(transfer(source.id, closed.id, 10)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_NOT_ACTIVE",
    )


async def test_users_cannot_call_transfer(account: AccountHarness) -> None:
    """Transfer is INTERNAL: a call carrying a user identity but no service is refused."""
    source, target = await account.person(deposit_minor=100), await account.person()
    stub = account.server.stub(account_service_pb2_grpc_stub(), ())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Transfer(transfer(source.id, target.id, 10))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def account_service_pb2_grpc_stub() -> type:
    from paynow.account.v1 import account_service_pb2_grpc

    return account_service_pb2_grpc.AccountServiceStub


async def test_concurrent_transfers_never_overdraw(account: AccountHarness) -> None:
    """50 concurrent debits against a balance that covers 10 make exactly 10 succeed."""
    source, target = await account.person(deposit_minor=1000), await account.person()
    stub = account.as_service()
    results = await asyncio.gather(
        *(stub.Transfer(transfer(source.id, target.id, 100)) for _ in range(50)),
        return_exceptions=True,
    )
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(succeeded) == 10
    assert {reason_of(e) for e in failed} == {"INSUFFICIENT_FUNDS"}
    got = await account.as_user(source.id).GetAccount(pb.GetAccountRequest(id=source.id))
    assert got.balance_minor == 0


async def test_concurrent_duplicate_transfers_move_money_once(account: AccountHarness) -> None:
    """50 concurrent Transfers with one key debit once; the others replay or are ABORTED."""
    source, target = await account.person(deposit_minor=1000), await account.person()
    stub = account.as_service()
    results = await asyncio.gather(
        *(stub.Transfer(transfer(source.id, target.id, 100, key="same")) for _ in range(50)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert ok
    assert len({r.transfer.id for r in ok}) == 1
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert all(e.code() == grpc.StatusCode.ABORTED for e in errors)
    got = await account.as_user(target.id).GetAccount(pb.GetAccountRequest(id=target.id))
    assert got.balance_minor == 100


async def test_transactions_are_newest_first_paged_and_filtered(account: AccountHarness) -> None:
    """ListTransactions pages newest first, and a time range narrows it."""
    ada = await account.person()
    stub = account.as_user(ada.id)
    for amount in (1, 2, 3):
        await stub.Deposit(
            pb.DepositRequest(
                id=ada.id, amount_minor=amount, currency_code="EUR", idempotency_key=f"d{amount}"
            )
        )
    first = await stub.ListTransactions(pb.ListTransactionsRequest(account_id=ada.id, page_size=2))
    rest = await stub.ListTransactions(
        pb.ListTransactionsRequest(account_id=ada.id, page_size=2, page_token=first.next_page_token)
    )
    assert [t.amount_minor for t in (*first.transactions, *rest.transactions)] == [3, 2, 1]
    assert rest.next_page_token == ""
    newest = first.transactions[0].create_time
    only_newest = await stub.ListTransactions(
        pb.ListTransactionsRequest(account_id=ada.id, start_time=newest)
    )
    assert [t.amount_minor for t in only_newest.transactions] == [3]
    before = await stub.ListTransactions(
        pb.ListTransactionsRequest(account_id=ada.id, end_time=timestamp_pb2.Timestamp(seconds=1))
    )
    assert list(before.transactions) == []


async def test_a_page_token_for_another_account_is_refused(account: AccountHarness) -> None:
    """A page token cannot be replayed against another query (INVALID_PAGE_TOKEN)."""
    ada = await account.person()
    stub = account.as_user(ada.id)
    for n in range(2):
        await stub.Deposit(
            pb.DepositRequest(
                id=ada.id, amount_minor=1, currency_code="EUR", idempotency_key=f"k{n}"
            )
        )
    page = await stub.ListTransactions(pb.ListTransactionsRequest(account_id=ada.id, page_size=1))
    await expect_error(
        stub.ListTransactions(
            pb.ListTransactionsRequest(
                account_id=ada.id,
                page_size=1,
                page_token=page.next_page_token,
                start_time=timestamp_pb2.Timestamp(seconds=5),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )


async def test_lookup_finds_a_transfer_by_key_without_moving_money(
    account: AccountHarness,
) -> None:
    """LookupTransfer returns the caller's transfer for a key, and NOT_FOUND for another key."""
    source, target = await account.person(deposit_minor=100), await account.person()
    stub = account.as_service("merchant")
    made = await stub.Transfer(transfer(source.id, target.id, 30, key="pay_lookup"))
    found = await stub.LookupTransfer(pb.LookupTransferRequest(idempotency_key="pay_lookup"))
    assert found.id == made.transfer.id
    await expect_error(
        stub.LookupTransfer(pb.LookupTransferRequest(idempotency_key="pay_other")),
        grpc.StatusCode.NOT_FOUND,
        "TRANSFER_NOT_FOUND",
    )
    await expect_error(
        account.as_service("payouts").LookupTransfer(
            pb.LookupTransferRequest(idempotency_key="pay_lookup")
        ),
        grpc.StatusCode.NOT_FOUND,
        "TRANSFER_NOT_FOUND",
    )

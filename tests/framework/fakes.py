"""A small AccountService servicer for framework tests: each RPC exercises one mechanism."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from paynow.account.v1 import errors_pb2 as account_errors
from services.framework import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceApp,
    ServiceSettings,
    StorageUnavailable,
    Unauthenticated,
    current_caller,
    current_request_id,
)

ACCOUNT_ID = "acc_" + "0" * 26
USER_ID = "acc_" + "1" * 26
MERCHANT_ID = "mer_" + "2" * 26
SERVICE = account_service_pb2.DESCRIPTOR.services_by_name["AccountService"]


class AccountNotFound(NotFound):
    reason = "ACCOUNT_NOT_FOUND"


class EmailAlreadyExists(AlreadyExists):
    reason = "EMAIL_ALREADY_EXISTS"


class InsufficientFunds(FailedPrecondition):
    reason = "INSUFFICIENT_FUNDS"


class EtagMismatch(Aborted):
    reason = "ETAG_MISMATCH"


class NotInTheEnum(NotFound):
    reason = "NOT_IN_THE_ENUM"


# CloseAccount raises the error named by the request's `etag`.
ERRORS: dict[str, DomainError | Exception] = {
    "invalid": InvalidArgument(violations=[("amount_minor", "must be positive")]),
    "not_found": AccountNotFound(account_id=ACCOUNT_ID),
    "exists": EmailAlreadyExists(email_domain="example.com"),
    "funds": InsufficientFunds(
        account_id=ACCOUNT_ID,
        balance_minor=5,
        requested_minor=10,
        violations=[("BALANCE", ACCOUNT_ID, "balance below the amount")],
    ),
    "etag": EtagMismatch(),
    "denied": PermissionDenied(),
    "unauthenticated": Unauthenticated(),
    "overloaded": ResourceExhausted(retry_after_s=2.5),
    "storage": StorageUnavailable(retry_after_s=0.5),
    "unavailable_plain": StorageUnavailable(),
    "unknown_reason": NotInTheEnum(),
    "crash": RuntimeError("boom"),
}


class FakeAccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    """Records what the framework handed it; never catches, like a real servicer."""

    def __init__(self, downstream: Any = None) -> None:
        self.downstream = downstream  # an AccountService stub from connect(), or None
        self.seen_time_remaining: list[float | None] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def GetAccount(self, request: Any, context: Any) -> Any:
        """Answer who called; relay to `downstream` when set, to test propagation."""
        if self.downstream is not None:
            return await self.downstream.GetAccount(request)
        self.seen_time_remaining.append(context.time_remaining())
        caller = current_caller()
        return account_pb2.Account(
            id=request.id,
            owner_id=caller.user_id or "",
            email=caller.service or "",
            display_name=current_request_id() or "",
        )

    async def UpdateAccount(self, request: Any, context: Any) -> Any:
        return request.account

    async def CloseAccount(self, request: Any, context: Any) -> Any:
        if request.etag == "abort":
            await context.abort(grpc.StatusCode.ABORTED, "aborted by the servicer")
        raise ERRORS[request.etag]

    async def Deposit(self, request: Any, context: Any) -> Any:
        """Hold the call open until the test releases it, to fill the concurrency bound."""
        self.started.set()
        await self.release.wait()
        return account_service_pb2.DepositResponse()

    async def CreateAccount(self, request: Any, context: Any) -> Any:
        return account_pb2.Account(id=ACCOUNT_ID, display_name=request.display_name)


class GatedDatabase:
    """A Database stand-in whose migration waits for the test, to observe NOT_SERVING."""

    def __init__(self, *, fail: bool = False) -> None:
        self.migrating = asyncio.Event()
        self.gate = asyncio.Event()
        self.fail = fail
        self.disposed = False

    async def migrate(self, path: str) -> None:
        self.migrating.set()
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("database unreachable")

    async def ping(self) -> None:
        return None

    async def dispose(self) -> None:
        self.disposed = True


def make_app(
    settings: ServiceSettings, servicer: FakeAccountServicer, database: Any = None
) -> ServiceApp:
    """A ServiceApp serving `servicer` as the account service."""
    app = ServiceApp(
        settings,
        domain="paynow.account",
        error_reasons=account_errors.ErrorReason,
        database=database,
        migrations="unused" if database is not None else None,
    )
    app.add_service(
        servicer, account_service_pb2_grpc.add_AccountServiceServicer_to_server, SERVICE
    )
    return app

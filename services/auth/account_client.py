"""The domain's AccountDirectory over account's gRPC CreateAccount.

account's errors are translated here, where they are received: only answers that prove
nothing was created for this registration become EmailTaken or AccountRequestRefused; every
other failure leaves the outcome unknown (AccountsUnavailable), so the credential stays
PENDING for a retry or the sweep, never deleted while an account might exist.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import structlog

from paynow.account.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from services.framework import remote_error

from .domain import AccountRequestRefused, AccountsUnavailable, Credential, EmailTaken

__all__ = ["GrpcAccountDirectory"]

log = structlog.get_logger(__name__)

# Codes that mean "not reached, or no answer in time": expected during an outage, so they
# are a warning; anything else unexplained is a bug or a misconfiguration (error).
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _details(error: grpc.aio.AioRpcError) -> tuple[str, list[tuple[str, str]]]:
    remote = remote_error(error)
    return remote.reason, remote.violations


class GrpcAccountDirectory:
    """Creates personal accounts through `stub()`, a connect()ed AccountServiceStub."""

    def __init__(self, stub: Callable[[], account_service_pb2_grpc.AccountServiceStub]) -> None:
        # A factory, not a stub: connect() must run inside the serving event loop.
        self._stub = stub

    async def create_personal_account(self, credential: Credential) -> str:
        request = account_service_pb2.CreateAccountRequest(
            kind=account_pb2.ACCOUNT_KIND_PERSONAL,
            email=credential.email,
            display_name=credential.display_name,
            currency_code=credential.currency_code,
            idempotency_key=credential.registration_id,
        )
        try:
            account = await self._stub().CreateAccount(request)
        except grpc.aio.AioRpcError as error:
            reason, violations = _details(error)
            if reason == "EMAIL_ALREADY_EXISTS":
                raise EmailTaken() from None
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                # account's field names are Register's too (email, display_name, currency_code).
                field, description = (violations or [("currency_code", error.details() or "")])[0]
                raise AccountRequestRefused(field, description) from None
            level = log.warning if error.code() in _TRANSIENT else log.error
            level(
                "account_create_failed",
                registration_id=credential.registration_id,
                code=error.code().name,
                reason=reason,
            )
            raise AccountsUnavailable() from None
        return str(account.id)

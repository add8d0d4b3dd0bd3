"""gRPC servicers of the account service."""

from __future__ import annotations

from paynow.account.v1 import account_service_pb2_grpc

__all__ = ["AccountServicer"]


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    """paynow.account.v1.AccountService: proto ↔ domain translation, nothing else.

    No method is implemented yet: each one answers UNIMPLEMENTED through the generated base
    class until its issue lands.
    """

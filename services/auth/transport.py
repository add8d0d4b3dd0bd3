"""gRPC servicers of the auth service."""

from __future__ import annotations

from paynow.auth.v1 import auth_service_pb2_grpc

__all__ = ["AuthServicer"]


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """paynow.auth.v1.AuthService: proto ↔ domain translation, nothing else.

    No method is implemented yet: each one answers UNIMPLEMENTED through the generated base
    class until its issue lands.
    """

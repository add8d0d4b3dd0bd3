"""One RPC as the middleware steps see it, and the shape of a step."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ._identity import ANONYMOUS, Caller
from ._policy import MethodPolicy

__all__ = ["Handler", "RpcCall", "Step"]


@dataclasses.dataclass(slots=True)
class RpcCall:
    policy: MethodPolicy
    request: Any
    context: Any  # grpc.aio.ServicerContext
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    request_id: str = ""
    caller: Caller = ANONYMOUS
    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str | None = None


Handler = Callable[[RpcCall], Awaitable[Any]]
Step = Callable[[RpcCall, Handler], Awaitable[Any]]

"""The server middleware chain, one grpc.aio interceptor wrapping each method once.

request id → trace span and metrics → access log → errors → concurrency bound → access →
validation →
idempotency (only methods whose request has `idempotency_key`) → handler.
Each step is `async step(call, next_)`; the chain is composed per method on its first call
and cached, so a call costs one RpcCall allocation plus the steps themselves.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import time
import uuid
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import grpc
import protovalidate
import structlog
from grpc_status import rpc_status

from . import _identity
from ._errors import (
    DomainError,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    Unimplemented,
    to_status,
)
from ._idempotency import IdempotencyStore
from ._identity import REQUEST_ID_KEY, authorize, resolve_caller
from ._observability import Observability
from ._policy import MethodPolicy, field_path
from ._rpc import Handler, RpcCall, Step

__all__ = ["ServerMiddleware"]

_log = structlog.get_logger("paynow.rpc")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Codes that point at the server rather than the client: logged at warning, not info.
_SERVER_FAULTS = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)


class ServerMiddleware(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Applies PayNow's per-RPC policy to every method listed in `policies`.

    Methods not listed (health, reflection) pass through untouched.
    """

    def __init__(
        self,
        policies: dict[str, MethodPolicy],
        *,
        domain: str,
        error_reasons: Collection[str],
        internal_token: str,
        max_concurrent_rpcs: int,
        idempotency: IdempotencyStore | None = None,
    ) -> None:
        self._policies = policies
        self._domain = domain
        self._reasons = frozenset(error_reasons)
        self._token = internal_token
        self._limit = max_concurrent_rpcs
        self._active = 0
        self._validator = protovalidate.Validator()
        self._idempotency = idempotency
        self._steps: list[Step] = [
            self._request_id,
            Observability(),
            self._access_log,
            self._errors,
            self._concurrency,
            self._access,
            self._validation,
        ]
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        method = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        policy = self._policies.get(method)
        handler = await continuation(details)
        if policy is None or handler is None:
            return handler
        wrapped = self._wrap(policy, handler)
        self._wrapped[method] = wrapped
        return wrapped

    def _compose(self, terminal: Handler, policy: MethodPolicy) -> Handler:
        chain = terminal
        steps = self._steps
        # Without a store (a service with no database) keys are not enforced; ServiceApp
        # warns about that once at start-up.
        if policy.replay_as is not None and self._idempotency is not None:
            steps = [*steps, self._idempotent]
        for step in reversed(steps):
            chain = functools.partial(step, next_=chain)  # type: ignore[call-arg]
        return chain

    def _wrap(self, policy: MethodPolicy, handler: Any) -> Any:
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def call_unary(call: RpcCall) -> Any:
                return await unary(call.request, call.context)

            chain = self._compose(call_unary, policy)

            async def unary_behavior(request: Any, context: Any) -> Any:
                return await chain(RpcCall(policy, request, context))

            return grpc.unary_unary_rpc_method_handler(
                unary_behavior,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        stream = handler.unary_stream
        is_generator = inspect.isasyncgenfunction(stream)

        # The chain awaits one coroutine, so a generator servicer's items are written here;
        # errors raised mid-stream then reach the error step like any other.
        async def call_stream(call: RpcCall) -> None:
            if is_generator:
                async for response in stream(call.request, call.context):
                    await call.context.write(response)
            else:
                await stream(call.request, call.context)

        stream_chain = self._compose(call_stream, policy)

        async def stream_behavior(request: Any, context: Any) -> None:
            await stream_chain(RpcCall(policy, request, context))

        return grpc.unary_stream_rpc_method_handler(
            stream_behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _request_id(self, call: RpcCall, next_: Handler) -> Any:
        context = call.context
        call.metadata = dict(context.invocation_metadata() or ())
        given = call.metadata.get(REQUEST_ID_KEY)
        if isinstance(given, str) and _VALID_REQUEST_ID.match(given):
            call.request_id = given
        else:
            call.request_id = uuid.uuid4().hex
        remaining = context.time_remaining()
        # Python does not propagate deadlines; connect()'s client interceptor reads this.
        deadline = None if remaining is None else time.monotonic() + remaining
        id_token = _identity._request_id.set(call.request_id)
        deadline_token = _identity._deadline.set(deadline)
        await context.send_initial_metadata(((REQUEST_ID_KEY, call.request_id),))
        try:
            with structlog.contextvars.bound_contextvars(
                request_id=call.request_id,
                service=call.policy.service,
                method=call.policy.method,
                peer=context.peer(),
            ):
                return await next_(call)
        finally:
            _identity._deadline.reset(deadline_token)
            _identity._request_id.reset(id_token)

    async def _access_log(self, call: RpcCall, next_: Handler) -> Any:
        started = time.perf_counter()
        try:
            return await next_(call)
        except asyncio.CancelledError:
            call.code = grpc.StatusCode.CANCELLED
            raise
        finally:
            fields: dict[str, Any] = {
                "code": call.code.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "caller": call.caller.service or "anonymous",
            }
            if call.caller.user_id:
                fields["user_id"] = call.caller.user_id
            if call.caller.merchant_id:
                fields["merchant_id"] = call.caller.merchant_id
            if call.reason:
                fields["reason"] = call.reason
            log = _log.warning if call.code in _SERVER_FAULTS else _log.info
            log("rpc_finished", **fields)

    async def _errors(self, call: RpcCall, next_: Handler) -> Any:
        try:
            return await next_(call)
        except grpc.aio.AbortError:
            # The servicer aborted by itself: its status stands, we only record the code.
            code = call.context.code()
            call.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
            raise
        except DomainError as error:
            await self._abort(call, error)
        except NotImplementedError:
            # The generated base class raises it for a method the servicer does not define.
            await self._abort(call, Unimplemented(method=call.policy.method))
        except Exception:
            _log.error("rpc_crashed", exc_info=True)
            await self._abort(
                call,
                Internal(
                    f"internal error (request id {call.request_id})", request_id=call.request_id
                ),
            )
        return None

    async def _abort(self, call: RpcCall, error: DomainError) -> None:
        if error.reason not in self._reasons:
            # A programming error in the service, but the client still deserves the code.
            _log.error("unknown_error_reason", reason=error.reason, error=type(error).__name__)
        call.code = error.code
        call.reason = error.reason
        status = to_status(error, self._domain)
        await call.context.abort_with_status(rpc_status.to_status(status))

    async def _concurrency(self, call: RpcCall, next_: Handler) -> Any:
        # Refuse at once rather than queue: a queued call holds memory and its deadline runs
        # out anyway, while the client can retry another replica after RetryInfo's delay.
        if self._active >= self._limit:
            raise ResourceExhausted(limit=self._limit)
        self._active += 1
        try:
            return await next_(call)
        finally:
            self._active -= 1

    async def _access(self, call: RpcCall, next_: Handler) -> Any:
        caller = resolve_caller(call.metadata, self._token)
        call.caller = caller
        authorize(caller, call.policy.allow)
        token = _identity._caller.set(caller)
        try:
            return await next_(call)
        finally:
            _identity._caller.reset(token)

    async def _validation(self, call: RpcCall, next_: Handler) -> Any:
        violations = self._validator.collect_violations(call.request)
        if violations:
            policy = call.policy
            masked: list[str] = []
            if policy.resource_field is not None:
                masked = list(call.request.update_mask.paths)
            paths = [(field_path(v), str(v.proto.message)) for v in violations]
            counted = [pair for pair in paths if not masked or policy.counts(pair[0], masked)]
            if counted:
                raise InvalidArgument(violations=counted)
        return await next_(call)

    async def _idempotent(self, call: RpcCall, next_: Handler) -> Any:
        key = call.request.idempotency_key
        store, response_type = self._idempotency, call.policy.replay_as
        if not key or store is None or response_type is None:
            return await next_(call)
        caller = call.caller
        # Scoped by method and caller: one merchant's key never replays another's call.
        scope = (
            f"{call.policy.service}/{call.policy.method}"
            f"|{caller.service or ''}|{caller.user_id or ''}|{caller.merchant_id or ''}"
        )
        remaining = call.context.time_remaining()
        lease = None if remaining is None else timedelta(seconds=max(remaining, 1.0))
        return await store.run(
            scope, key, call.request, response_type, lambda: next_(call), lease=lease
        )

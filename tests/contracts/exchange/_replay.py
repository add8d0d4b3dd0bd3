"""Replaying exchanges against running providers, calling methods by full name.

Nothing here knows an RPC: the method, its request and response types and whether it
streams all come from the descriptor pool, so a new RPC needs only a new JSON file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.framework import (
    CALLER_SERVICE_KEY,
    INTERNAL_TOKEN_KEY,
    MERCHANT_ID_KEY,
    USER_ID_KEY,
    Database,
    IdempotencyStore,
)

from ._format import Exchange, FormatError, Schema, Step, Variables, provider_of, render, short_name
from ._match import check

__all__ = ["ExchangeFailed", "Providers", "replay"]

_CALL_TIMEOUT_S = 10.0


class ExchangeFailed(AssertionError):
    """A provider answered differently from the exchange; the message names the field."""


@dataclass
class Providers:
    """Where each provider listens (`account` → `127.0.0.1:port`) and the internal token."""

    addresses: Mapping[str, str]
    internal_token: str
    # Each provider's database URL, for set-up steps that `hold` an idempotency key.
    databases: Mapping[str, str] = field(default_factory=dict)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def channel(self, rpc: str) -> grpc.aio.Channel:
        address = self.addresses[provider_of(rpc)]
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address)
        return self._channels[address]

    def metadata(
        self, caller: Mapping[str, str], variables: Variables
    ) -> tuple[tuple[str, str], ...]:
        if not caller:
            return ()
        who = render(dict(caller), variables)
        pairs = [(CALLER_SERVICE_KEY, who["service"]), (INTERNAL_TOKEN_KEY, self.internal_token)]
        if "user" in who:
            pairs.append((USER_ID_KEY, who["user"]))
        if "merchant" in who:
            pairs.append((MERCHANT_ID_KEY, who["merchant"]))
        return tuple(pairs)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _json(message: Any) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def error_info(error: grpc.aio.AioRpcError) -> tuple[str, str, dict[str, str], list[str]]:
    """(reason, domain, metadata, violated fields) of a failed call's google.rpc.Status."""
    status = rpc_status.from_call(error)
    reason, domain, metadata, fields = "", "", {}, []
    for detail in status.details if status is not None else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Unpack(bad):
            fields = [v.field for v in bad.field_violations]
    return reason, domain, metadata, fields


def _describe(error: grpc.aio.AioRpcError) -> str:
    reason = error_info(error)[0]
    return f"{error.code().name} {reason or '(no ErrorInfo)'}: {error.details()}"


def _check_error(expected: Mapping[str, Any], error: grpc.aio.AioRpcError) -> list[str]:
    reason, domain, metadata, fields = error_info(error)
    want = f"{expected['code']} {expected.get('reason', '')}".strip()
    got = f"{error.code().name} {reason}".strip()
    if error.code().name != expected["code"] or reason != expected.get("reason", reason):
        return [f"expected error {want}, got {_describe(error)}"]
    problems = []
    if "domain" in expected and domain != expected["domain"]:
        problems.append(f"error {got}: expected domain {expected['domain']!r}, got {domain!r}")
    for key, value in expected.get("metadata", {}).items():
        if metadata.get(key) != value:
            actual = metadata.get(key)
            problems.append(f"error {got}: metadata {key} expected {value!r}, got {actual!r}")
    for violation in expected.get("violations", []):
        if violation["field"] not in fields:
            missing = violation["field"]
            problems.append(f"error {got}: no field violation on {missing} (got {fields})")
    return problems


def _lookup(document: Any, path: str) -> Any:
    value = document
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


async def _call(
    step: Step, providers: Providers, schema: Schema, variables: Variables
) -> list[Any]:
    method = schema.method(step.rpc)
    request_class = schema.message_class(method.input_type)
    response_class = schema.message_class(method.output_type)
    try:
        request = json_format.ParseDict(render(step.request, variables), request_class())
    except json_format.ParseError as error:
        raise FormatError(f"request does not fit {method.input_type.full_name}: {error}") from None
    path = f"/{step.rpc}"
    kwargs = {
        "request_serializer": request_class.SerializeToString,
        "response_deserializer": response_class.FromString,
    }
    metadata = providers.metadata(step.caller, variables)
    channel = providers.channel(step.rpc)
    if not method.server_streaming:
        reply = await channel.unary_unary(path, **kwargs)(
            request, metadata=metadata, timeout=_CALL_TIMEOUT_S
        )
        return [reply]
    call = channel.unary_stream(path, **kwargs)(request, metadata=metadata, timeout=_CALL_TIMEOUT_S)
    received = []
    async for reply in call:
        received.append(reply)
        if step.max_messages is not None and len(received) >= step.max_messages:
            call.cancel()
            break
    return received


async def run_step(
    step: Step, providers: Providers, schema: Schema, variables: Variables, label: str
) -> None:
    """Make one call; raise ExchangeFailed naming `label` and the field that differs."""
    output_type = schema.method(step.rpc).output_type
    try:
        replies = await _call(step, providers, schema, variables)
    except grpc.aio.AioRpcError as error:
        if step.error is None:
            raise ExchangeFailed(f"{label}: expected a response, got {_describe(error)}") from None
        problems = _check_error(render(dict(step.error), variables), error)
        if problems:
            raise ExchangeFailed(f"{label}: " + "; ".join(problems)) from None
        return
    if step.error is not None:
        expected = f"{step.error['code']} {step.error.get('reason', '')}".strip()
        raise ExchangeFailed(f"{label}: expected error {expected}, got a response")
    documents = [_json(reply) for reply in replies]
    problems: list[str] = []
    if step.stream is not None:
        expected_stream = render(step.stream, variables)
        if len(documents) != len(expected_stream):
            problems.append(f"expected {len(expected_stream)} messages, got {len(documents)}")
        for i, (want, got) in enumerate(zip(expected_stream, documents, strict=False)):
            problems += check(want, got, output_type, f"message {i + 1} field")
    elif step.response is not None:
        problems += check(render(step.response, variables), documents[0], output_type)
    if problems:
        raise ExchangeFailed(f"{label}: " + "; ".join(problems))
    last = documents[-1] if documents else {}
    for name, path in step.capture.items():
        value = _lookup(last, path)
        if value in (None, ""):
            raise ExchangeFailed(f"{label}: cannot capture {name}: response field {path} missing")
        variables[name] = value


async def _hold(
    step: Step, providers: Providers, schema: Schema, variables: Variables, stack: AsyncExitStack
) -> None:
    """Claim the step's idempotency key in the provider's own store, as a call still running
    would, until the exchange ends: the state behind ABORTED REQUEST_IN_PROGRESS."""
    method = schema.method(step.rpc)
    request = json_format.ParseDict(
        render(step.request, variables), schema.message_class(method.input_type)()
    )
    who = render(dict(step.caller), variables)
    # The scope the framework's idempotency middleware gives a call (method and caller).
    scope = (
        f"{method.containing_service.full_name}/{method.name}"
        f"|{who.get('service', '')}|{who.get('user', '')}|{who.get('merchant', '')}"
    )
    database = Database(providers.databases[provider_of(step.rpc)], service="contract-state")
    stack.push_async_callback(database.dispose)
    claimed, finished = asyncio.Event(), asyncio.Event()

    async def still_running() -> Any:
        claimed.set()
        await finished.wait()
        raise asyncio.CancelledError  # releases the key, as a failed call would

    store = IdempotencyStore(database)
    holder = asyncio.create_task(
        store.run(scope, request.idempotency_key, request, type(request), still_running)
    )

    async def release() -> None:
        finished.set()
        with contextlib.suppress(asyncio.CancelledError):
            await holder

    stack.push_async_callback(release)
    claim = asyncio.create_task(claimed.wait())
    await asyncio.wait({claim, holder}, return_when=asyncio.FIRST_COMPLETED)
    claim.cancel()
    if holder.done():
        holder.result()


async def replay(
    exchange: Exchange, providers: Providers, schema: Schema | None = None, *, label: str
) -> Variables:
    """Run the set-up steps, then the exchange's call; every answer must match."""
    schema = schema or Schema.load()
    variables = Variables()
    async with AsyncExitStack() as stack:
        for i, step in enumerate(exchange.given, start=1):
            if step.hold:
                await _hold(step, providers, schema, variables, stack)
                continue
            where = f"{label}, set-up step {i} ({short_name(step.rpc)})"
            await run_step(step, providers, schema, variables, where)
        await run_step(exchange.call, providers, schema, variables, label)
    return variables

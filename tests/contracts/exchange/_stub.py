"""A stub provider built from a consumer contract, for the consumer's own tests.

It serves every method of the contract's services generically (from the descriptor pool).
A call is answered by the first chosen interaction whose request it fits: the contract's
response with its matchers turned into plausible values, or the contracted error as a
google.rpc.Status with ErrorInfo. A request no interaction covers is refused and reported
when the stub stops, so a consumer cannot rely on a call the provider never verified.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ._format import (
    Contract,
    Exchange,
    FormatError,
    Schema,
    Variables,
    render,
    short_name,
    template_names,
    template_pattern,
    whole_template,
)
from ._match import example_value, request_problems

__all__ = ["StubProvider", "serve_stub"]


def _bind(expected: Any, actual: Any, variables: Variables) -> Any:
    """`expected` with its templates bound to what the consumer actually sent."""
    if isinstance(expected, str) and template_names(expected):
        found = template_pattern(expected).fullmatch(str(actual)) if actual is not None else None
        if found is None:
            return expected
        whole = whole_template(expected)
        if whole is not None:
            variables[whole] = actual  # keeps its JSON type
        else:
            for name, value in zip(template_names(expected), found.groups(), strict=True):
                variables[name] = value
        return actual
    if isinstance(expected, dict) and "$match" not in expected:
        got = actual if isinstance(actual, dict) else {}
        return {key: _bind(value, got.get(key), variables) for key, value in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        return [_bind(e, a, variables) for e, a in zip(expected, actual, strict=True)]
    return expected


def _status(error: dict[str, Any], default_domain: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason=error.get("reason", ""),
        domain=error.get("domain", default_domain),
        metadata=error.get("metadata", {}),
    )
    details = [any_pb2.Any()]
    details[0].Pack(info)
    if error.get("violations"):
        bad = error_details_pb2.BadRequest()
        for violation in error["violations"]:
            bad.field_violations.add(
                field=violation["field"], description=violation.get("description", "is invalid")
            )
        details.append(any_pb2.Any())
        details[-1].Pack(bad)
    code = getattr(code_pb2, error["code"])
    message = error.get("message", f"{error.get('reason', error['code'])} (contract stub)")
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))


class StubProvider:
    """The stub's state: where it listens, which interactions answered, what nothing covered."""

    def __init__(self, contract: Contract, chosen: Sequence[Exchange], *, in_order: bool) -> None:
        self.contract = contract
        self.address = ""
        self.answered: list[str] = []
        self.unmatched: list[str] = []
        self._remaining = list(chosen)
        self._in_order = in_order
        self._schema = Schema.load()

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        services = {interaction.rpc.partition("/")[0] for interaction in self.contract.interactions}
        found = []
        for service in sorted(services):
            methods = {}
            for method in self._schema.pool.FindServiceByName(service).methods:
                methods[method.name] = self._handler(f"{service}/{method.name}", method)
            found.append(grpc.method_handlers_generic_handler(service, methods))
        return found

    def _handler(self, rpc: str, method: Any) -> grpc.RpcMethodHandler:
        request_class = self._schema.message_class(method.input_type)
        response_class = self._schema.message_class(method.output_type)
        kwargs = {
            "request_deserializer": request_class.FromString,
            "response_serializer": response_class.SerializeToString,
        }
        if method.server_streaming:

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                for document in await self._answer(rpc, request, context):
                    yield json_format.ParseDict(document, response_class())

            return grpc.unary_stream_rpc_method_handler(stream, **kwargs)

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            documents = await self._answer(rpc, request, context)
            return json_format.ParseDict(documents[0], response_class())

        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)

    async def _answer(self, rpc: str, request: Any, context: grpc.aio.ServicerContext) -> list[Any]:
        actual = json_format.MessageToDict(request)
        candidates = [i for i in self._remaining if i.rpc == rpc]
        if self._in_order:
            candidates = candidates[:1]
        refusals = []
        for interaction in candidates:
            variables = Variables()
            problems = request_problems(_bind(interaction.call.request, actual, variables), actual)
            if problems:
                refusals.append(f"{interaction.name!r}: {'; '.join(problems)}")
                continue
            if self._in_order:
                self._remaining.remove(interaction)
            self.answered.append(interaction.name)
            try:
                return self._respond(interaction, variables)
            except FormatError as error:
                self.unmatched.append(f"{interaction.name!r}: cannot build the answer: {error}")
                await context.abort(grpc.StatusCode.INTERNAL, str(error))
            except _Refusal as refusal:
                await context.abort_with_status(refusal.status)
        self.unmatched.append(
            f"{short_name(rpc)} {actual}: "
            + (" | ".join(refusals) or "no chosen interaction of the contract calls it")
        )
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, f"no interaction of {self.contract.path.name} fits"
        )
        raise AssertionError("unreachable")

    def _respond(self, interaction: Exchange, variables: Variables) -> list[Any]:
        step = interaction.call
        if step.error is not None:
            error = render(dict(step.error), variables)
            raise _Refusal(_status(error, f"paynow.{self.contract.provider}"))
        if step.stream is not None:
            return [example_value(render(item, variables)) for item in step.stream]
        return [example_value(render(step.response or {}, variables))]


class _Refusal(Exception):
    def __init__(self, status: grpc.Status) -> None:
        self.status = status


@asynccontextmanager
async def serve_stub(
    contract: Contract, *interactions: str, in_order: bool = False
) -> AsyncIterator[StubProvider]:
    """A stub of the contract's provider on 127.0.0.1:0, answering with the named
    interactions (all of them if none is named; with `in_order`, each once, in that order).

    Raises AssertionError on exit if the consumer sent a request no interaction covers.
    """
    chosen = [contract.interaction(name) for name in interactions] or list(contract.interactions)
    stub = StubProvider(contract, chosen, in_order=in_order)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(stub.handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stub.address = f"127.0.0.1:{port}"
    try:
        yield stub
    finally:
        await server.stop(None)
    if stub.unmatched:
        raise AssertionError(
            f"{contract.consumer} sent {contract.provider} requests its contract "
            f"({contract.path.name}) does not cover: " + "; ".join(stub.unmatched)
        )

"""Compiled routes: everything one HTTP binding needs, worked out once at start-up.

Per request, a route only fills a message (body, query, path), calls its precomputed
multicallable and encodes the reply; no descriptor is looked up on the way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .auth import PUBLIC
from .descriptors import Binding, MethodSpec
from .grpc_client import Channel
from .marshal import BodyDecoder, ResponseEncoder
from .query import QueryBinder, Setter, resolve, setter
from .routing import Template, TemplateError, Variable, parse_template

__all__ = ["IDEMPOTENCY_FIELD", "Route", "compile_route"]

# AIP-155's request-id field by its PayNow name: an `Idempotency-Key` header fills it.
IDEMPOTENCY_FIELD = "idempotency_key"


@dataclasses.dataclass(eq=False)
class Route:
    """One HTTP binding of one RPC, ready to serve."""

    label: str
    spec: MethodSpec
    template: Template
    request_class: Callable[[], Message]
    decoder: BodyDecoder
    encoder: ResponseEncoder
    query: QueryBinder
    path_setters: tuple[tuple[Variable, Setter], ...]
    idempotency_field: str | None
    public: bool
    # The rate-limit class: the method's own, else `public` for public routes, else "" for
    # the class of whoever authenticates (`user` or `merchant`).
    rate_limit_class: str
    call: Any  # grpc.aio UnaryUnaryMultiCallable or UnaryStreamMultiCallable


def _path_setter(spec: MethodSpec, variable: Variable) -> Setter:
    fields = resolve(spec.input, variable.field_path)
    if any(f.is_repeated for f in fields):
        # http.proto: path variables must not refer to repeated or map fields.
        raise TemplateError(f"{spec.path}: path variable {variable.field_path!r} is repeated")
    return setter(fields, variable.field_path)


def compile_route(
    spec: MethodSpec,
    binding: Binding,
    channel: Channel,
    pool: descriptor_pool.DescriptorPool,
) -> Route:
    """The Route for `binding`; raises TemplateError or ValueError (naming the method) when
    the template, body or response_body does not fit the method's messages."""
    if spec.client_streaming:
        raise TemplateError(f"{spec.path}: client-streaming methods are not transcoded")
    template = parse_template(binding.template)
    request_class = message_factory.GetMessageClass(spec.input)
    response_class = message_factory.GetMessageClass(spec.output)
    setters = tuple((v, _path_setter(spec, v)) for v in template.variables)
    decoder = BodyDecoder(spec.input, binding.body, pool)
    bound = [
        ".".join(f.name for f in resolve(spec.input, v.field_path)) for v in template.variables
    ]
    if decoder.field is not None:
        bound.append(decoder.field.name)
    query = QueryBinder(spec.input, bound, allowed=binding.body != "*")
    key_field = spec.input.fields_by_name.get(IDEMPOTENCY_FIELD)
    has_key = key_field is not None and key_field.type == FieldDescriptor.TYPE_STRING
    factory = channel.unary_stream if spec.server_streaming else channel.unary_unary
    return Route(
        label=f"{binding.http_method} {binding.template}",
        spec=spec,
        template=template,
        request_class=request_class,
        decoder=decoder,
        encoder=ResponseEncoder(spec.output, binding.response_body, pool),
        query=query,
        path_setters=setters,
        idempotency_field=IDEMPOTENCY_FIELD if has_key else None,
        public=PUBLIC in spec.access,
        rate_limit_class=spec.rate_limit_class or ("public" if PUBLIC in spec.access else ""),
        call=factory(
            spec.path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        ),
    )

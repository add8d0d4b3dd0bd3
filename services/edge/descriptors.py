"""The FileDescriptorSet: a private descriptor pool, and every annotated method in it.

The set is read into its own pool rather than the process default, so any set works (a
test proto, another product's API) without clashing with modules this process imports.
Options are read from the raw FileDescriptorProtos, where the `google.api.http` and
`paynow.api.v1.access` extensions are registered and parse as typed messages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from google.api import annotations_pb2 as http_annotations
from google.api import http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.rpc import error_details_pb2, status_pb2

from paynow.api.v1 import annotations_pb2 as access_annotations

__all__ = ["Binding", "MethodSpec", "load_descriptor_set"]

_PATTERNS = ("get", "put", "post", "delete", "patch")


@dataclasses.dataclass(frozen=True)
class Binding:
    """One HTTP rule of a method (its main rule or an additional binding)."""

    http_method: str
    template: str
    body: str
    response_body: str


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """An RPC with at least one HTTP binding, as the edge needs it."""

    service: str
    name: str
    input: Descriptor
    output: Descriptor
    server_streaming: bool
    client_streaming: bool
    access: frozenset[int]
    bindings: tuple[Binding, ...]

    @property
    def path(self) -> str:
        """The gRPC method path, `/package.Service/Method`."""
        return f"/{self.service}/{self.name}"


def _binding(rule: http_pb2.HttpRule) -> Binding | None:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return None
    if kind == "custom":
        return Binding(rule.custom.kind.upper(), rule.custom.path, rule.body, rule.response_body)
    return Binding(kind.upper(), getattr(rule, kind), rule.body, rule.response_body)


def _bindings(options: descriptor_pb2.MethodOptions) -> tuple[Binding, ...]:
    if not options.HasExtension(http_annotations.http):
        return ()
    rule = options.Extensions[http_annotations.http]
    # The spec: additional_bindings nest one level only, and their own are ignored.
    found = [_binding(rule), *(_binding(extra) for extra in rule.additional_bindings)]
    return tuple(b for b in found if b is not None)


def _access(options: descriptor_pb2.MethodOptions, default: int) -> frozenset[int]:
    if options.HasExtension(access_annotations.access):
        allow = options.Extensions[access_annotations.access].allow
        if allow:
            return frozenset(allow)
    return frozenset({default})


def _add_file(pool: descriptor_pool.DescriptorPool, file: FileDescriptor) -> None:
    try:
        pool.FindFileByName(file.name)
        return
    except KeyError:
        pass
    for dependency in file.dependencies:
        _add_file(pool, dependency)
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb))


def load_descriptor_set(
    path: Path, default_access: int
) -> tuple[descriptor_pool.DescriptorPool, list[MethodSpec]]:
    """The pool of every file in the set and the methods that carry HTTP bindings.

    Raises OSError if the file is unreadable and ValueError/TypeError if the set is malformed
    or misses an imported file.
    """
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    # Backends pack google.rpc details into errors; their types must resolve to render `@type`.
    for module in (error_details_pb2, status_pb2):
        _add_file(pool, module.DESCRIPTOR)
    methods: list[MethodSpec] = []
    for file in files:
        package = f"{file.package}." if file.package else ""
        for service in file.service:
            for method in service.method:
                bindings = _bindings(method.options)
                if not bindings:
                    continue
                methods.append(
                    MethodSpec(
                        service=package + service.name,
                        name=method.name,
                        input=pool.FindMessageTypeByName(method.input_type.lstrip(".")),
                        output=pool.FindMessageTypeByName(method.output_type.lstrip(".")),
                        server_streaming=method.server_streaming,
                        client_streaming=method.client_streaming,
                        access=_access(method.options, default_access),
                        bindings=bindings,
                    )
                )
    return pool, methods

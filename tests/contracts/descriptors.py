"""Walks the generated FileDescriptorSet for the contract tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Imported for their side effect: the extensions must be registered before the set is
# parsed, or their options stay unknown fields.
from google.api import annotations_pb2 as http_annotations
from google.protobuf import descriptor_pb2

from paynow.api.v1 import annotations_pb2 as access_annotations

__all__ = [
    "Documented",
    "access_rule",
    "descriptor_set",
    "documented_elements",
    "http_rule",
    "paynow_files",
    "rpcs",
]

# Field numbers of FileDescriptorProto / DescriptorProto / EnumDescriptorProto /
# ServiceDescriptorProto, as used in SourceCodeInfo.Location.path.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


@cache
def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    data = resources.files("paynow").joinpath("descriptor_set.binpb").read_bytes()
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def paynow_files() -> list[descriptor_pb2.FileDescriptorProto]:
    return [f for f in descriptor_set().file if f.package.startswith("paynow.")]


def rpcs() -> Iterator[tuple[str, descriptor_pb2.MethodDescriptorProto]]:
    """Yield (`package.Service/Method`, method) for every PayNow RPC."""
    for file in paynow_files():
        for service in file.service:
            for method in service.method:
                yield f"{file.package}.{service.name}/{method.name}", method


def access_rule(method: descriptor_pb2.MethodDescriptorProto) -> access_annotations.AccessRule:
    return method.options.Extensions[access_annotations.access]


def http_rule(method: descriptor_pb2.MethodDescriptorProto) -> object | None:
    if not method.options.HasExtension(http_annotations.http):
        return None
    return method.options.Extensions[http_annotations.http]


@dataclass(frozen=True)
class Documented:
    """One element that needs a comment: its full name and its source path."""

    name: str
    path: tuple[int, ...]


def documented_elements(file: descriptor_pb2.FileDescriptorProto) -> Iterator[Documented]:
    """Every service, method, message, field, enum and enum value declared in `file`."""
    prefix = file.package
    for i, message in enumerate(file.message_type):
        yield from _message_elements(message, f"{prefix}.{message.name}", (_FILE_MESSAGE, i))
    for i, enum in enumerate(file.enum_type):
        yield from _enum_elements(enum, f"{prefix}.{enum.name}", (_FILE_ENUM, i))
    for i, service in enumerate(file.service):
        name = f"{prefix}.{service.name}"
        yield Documented(name, (_FILE_SERVICE, i))
        for j, method in enumerate(service.method):
            yield Documented(f"{name}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, j))


def _message_elements(
    message: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]
) -> Iterator[Documented]:
    yield Documented(name, path)
    for j, field in enumerate(message.field):
        yield Documented(f"{name}.{field.name}", (*path, _MESSAGE_FIELD, j))
    for j, nested in enumerate(message.nested_type):
        if nested.options.map_entry:
            continue
        yield from _message_elements(nested, f"{name}.{nested.name}", (*path, _MESSAGE_NESTED, j))
    for j, enum in enumerate(message.enum_type):
        yield from _enum_elements(enum, f"{name}.{enum.name}", (*path, _MESSAGE_ENUM, j))


def _enum_elements(
    enum: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]
) -> Iterator[Documented]:
    yield Documented(name, path)
    for j, value in enumerate(enum.value):
        yield Documented(f"{name}.{value.name}", (*path, _ENUM_VALUE, j))

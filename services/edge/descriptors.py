"""The FileDescriptorSet: a private descriptor pool, and every annotated method in it.

The set is read into its own pool rather than the process default, so any set works (a
test proto, another product's API) without clashing with modules this process imports.
Options are read from the raw FileDescriptorProtos, where the `google.api.http` and
`paynow.api.v1.access` extensions are registered and parse as typed messages. The same raw
protos carry the comments (source_code_info) and field options that the OpenAPI document
needs; `SourceInfo` keeps them by full name, apart from anything a request touches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from buf.validate import validate_pb2  # noqa: F401  (registers the field rules for parsing)
from google.api import annotations_pb2 as http_annotations
from google.api import (
    field_behavior_pb2,  # noqa: F401  (registers field_behavior for parsing)
    http_pb2,
)
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.rpc import error_details_pb2, status_pb2

from paynow.api.v1 import annotations_pb2 as access_annotations

__all__ = ["Binding", "MethodSpec", "SourceInfo", "load_descriptor_set"]

# Field numbers in descriptor.proto, as source_code_info paths use them.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def _clean(comment: str) -> str:
    # protoc keeps the space after `//` on every line; drop it and surrounding blank lines.
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(line.rstrip() for line in lines).strip()


class SourceInfo:
    """Comments and field options of a descriptor set, by full name. Start-up use only:
    the OpenAPI document reads them, no request does.

    Keys: `pkg.Message`, `pkg.Message.field`, `pkg.Enum`, `pkg.Enum.VALUE` (under its enum,
    unlike proto scoping, so values of two enums never clash), `pkg.Service`,
    `pkg.Service.Method`.
    """

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto] = ()) -> None:
        self._comments: dict[str, str] = {}
        self._field_options: dict[str, descriptor_pb2.FieldOptions] = {}
        for file in files:
            self._add_file(file)

    def comment(self, full_name: str) -> str:
        """The element's leading comment (else its trailing one), cleaned; "" if none."""
        return self._comments.get(full_name, "")

    def field_options(self, full_name: str) -> descriptor_pb2.FieldOptions:
        """The field's options with extensions parsed (field_behavior, buf.validate)."""
        return self._field_options.get(full_name) or descriptor_pb2.FieldOptions()

    def _add_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        found = {tuple(loc.path): loc for loc in file.source_code_info.location}

        def note(name: str, path: tuple[int, ...]) -> None:
            location = found.get(path)
            if location is not None:
                text = location.leading_comments or location.trailing_comments
                if text.strip():
                    self._comments[name] = _clean(text)

        def enum(
            prefix: str, item: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...]
        ) -> None:
            name = prefix + item.name
            note(name, path)
            for i, value in enumerate(item.value):
                note(f"{name}.{value.name}", (*path, _ENUM_VALUE, i))

        def message(
            prefix: str, item: descriptor_pb2.DescriptorProto, path: tuple[int, ...]
        ) -> None:
            name = prefix + item.name
            note(name, path)
            for i, field in enumerate(item.field):
                note(f"{name}.{field.name}", (*path, _MESSAGE_FIELD, i))
                self._field_options[f"{name}.{field.name}"] = field.options
            for i, nested in enumerate(item.nested_type):
                message(name + ".", nested, (*path, _MESSAGE_NESTED, i))
            for i, inner in enumerate(item.enum_type):
                enum(name + ".", inner, (*path, _MESSAGE_ENUM, i))

        prefix = f"{file.package}." if file.package else ""
        for i, item in enumerate(file.message_type):
            message(prefix, item, (_FILE_MESSAGE, i))
        for i, top in enumerate(file.enum_type):
            enum(prefix, top, (_FILE_ENUM, i))
        for i, service in enumerate(file.service):
            note(prefix + service.name, (_FILE_SERVICE, i))
            for j, method in enumerate(service.method):
                path = (_FILE_SERVICE, i, _SERVICE_METHOD, j)
                note(f"{prefix}{service.name}.{method.name}", path)


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
    # `(paynow.api.v1.access).rate_limit_class`; "" means the access level's own class.
    rate_limit_class: str = ""
    # The whole set's comments and field options, shared by its methods (OpenAPI only).
    source: SourceInfo = dataclasses.field(default_factory=SourceInfo, compare=False, repr=False)

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


def _rate_limit_class(options: descriptor_pb2.MethodOptions) -> str:
    if options.HasExtension(access_annotations.access):
        name: str = options.Extensions[access_annotations.access].rate_limit_class
        return name
    return ""


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
    source = SourceInfo(files)
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
                        rate_limit_class=_rate_limit_class(method.options),
                        source=source,
                    )
                )
    return pool, methods

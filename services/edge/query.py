"""Request fields from strings: path variables and query parameters.

A field path (`book.author.display_name`, or `book.author.displayName`: proto and JSON names
are both accepted) resolves once to a setter that converts the string as proto3 JSON would
(enums by name or number, Timestamp/Duration/FieldMask in their JSON string forms, wrappers
as their wrapped value) and writes it into the request message. Setters are cached per route,
so a request pays a dict lookup per parameter, not a descriptor walk.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["FieldPathError", "FieldValueError", "QueryBinder", "Setter", "resolve", "setter"]

Setter = Callable[[Message, str], None]
_F = FieldDescriptor
_INTS = {
    _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_SINT32,
    _F.TYPE_SINT64, _F.TYPE_FIXED32, _F.TYPE_FIXED64, _F.TYPE_SFIXED32, _F.TYPE_SFIXED64,
}  # fmt: skip
# Messages whose proto3 JSON form is a single string or scalar, so a string can set them.
_STRING_FORM = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
_WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
_MAX_CACHED = 256


class FieldPathError(ValueError):
    """No such field, or one that cannot be set from a string (a map, a repeated message)."""


class FieldValueError(ValueError):
    """The string is not a valid value for the field."""


def resolve(message: Descriptor, dotted: str) -> list[FieldDescriptor]:
    """The fields along `dotted`; raises FieldPathError naming the first unknown part."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in dotted.split("."):
        if current is None:
            raise FieldPathError(f"{dotted!r}: {fields[-1].name!r} has no fields")
        field = current.fields_by_name.get(part) or current.fields_by_camelcase_name.get(part)
        if field is None:
            raise FieldPathError(f"{dotted!r}: {current.full_name} has no field {part!r}")
        if fields and fields[-1].is_repeated:
            raise FieldPathError(f"{dotted!r}: cannot address inside repeated {part!r}")
        fields.append(field)
        current = field.message_type if field.type == _F.TYPE_MESSAGE else None
    return fields


def _to_bool(raw: str) -> bool:
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _to_bytes(raw: str) -> bytes:
    padded = raw + "=" * (-len(raw) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error as exc:
        raise ValueError("expected base64") from exc


def _scalar(field: FieldDescriptor) -> Callable[[str], Any]:
    if field.type in _INTS:
        return int
    if field.type in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return float
    if field.type == _F.TYPE_BOOL:
        return _to_bool
    if field.type == _F.TYPE_BYTES:
        return _to_bytes
    if field.enum_type is not None:
        enum_type = field.enum_type
        values = enum_type.values_by_name

        def enum(raw: str) -> int:
            if raw in values:
                return values[raw].number
            if raw.lstrip("-").isdigit():
                return int(raw)
            raise ValueError(f"expected a {enum_type.full_name} name or number")

        return enum
    return str


def _message_leaf(message: Descriptor, field: FieldDescriptor) -> Callable[[str], Any]:
    name = message.full_name
    if name in _STRING_FORM:
        return str
    if name in _WRAPPERS:
        inner = _scalar(message.fields_by_name["value"])
        # ParseDict takes a wrapper's bytes as base64 text, as JSON carries them.
        return str if inner is _to_bytes else inner
    raise FieldPathError(f"{field.full_name}: a {name} cannot be set from a string")


def setter(fields: list[FieldDescriptor], label: str) -> Setter:
    """A function that converts a string and sets it at `fields` (appends if repeated);
    it raises FieldValueError naming `label` for a value the field cannot hold."""
    *parents, leaf = fields
    names = [f.name for f in parents]
    if leaf.message_type is not None and leaf.message_type.GetOptions().map_entry:
        raise FieldPathError(f"{label!r}: map fields cannot be set from a string")
    repeated = leaf.is_repeated
    if leaf.message_type is not None:
        if repeated:
            raise FieldPathError(f"{label!r}: repeated messages cannot be set from a string")
        convert = _message_leaf(leaf.message_type, leaf)

        def write(target: Message, value: Any) -> None:
            json_format.ParseDict(value, getattr(target, leaf.name))
    else:
        convert = _scalar(leaf)
        if repeated:

            def write(target: Message, value: Any) -> None:
                getattr(target, leaf.name).append(value)
        else:

            def write(target: Message, value: Any) -> None:
                setattr(target, leaf.name, value)

    def set_field(message: Message, raw: str) -> None:
        target = message
        for name in names:
            target = getattr(target, name)
        try:
            write(target, convert(raw))
        except (ValueError, TypeError, json_format.ParseError) as exc:
            raise FieldValueError(f"invalid value for {label!r}: {exc}") from None

    return set_field


class QueryBinder:
    """Sets request fields from a query string, refusing names it must not accept."""

    def __init__(self, message: Descriptor, excluded: Collection[str], *, allowed: bool) -> None:
        # `excluded`: proto-name paths bound by the path or the body; they and everything
        # under them are not query parameters. `allowed` False: `body: "*"` takes no query.
        self._message = message
        self._excluded = tuple(excluded)
        self._allowed = allowed
        self._setters: dict[str, tuple[Setter, bool]] = {}

    def _setter(self, name: str) -> tuple[Setter, bool]:
        cached = self._setters.get(name)
        if cached is not None:
            return cached
        if not self._allowed:
            raise FieldPathError(f"{name!r}: this method takes no query parameters")
        fields = resolve(self._message, name)
        proto_path = ".".join(f.name for f in fields)
        for bound in self._excluded:
            if proto_path == bound or proto_path.startswith(bound + "."):
                raise FieldPathError(f"{name!r}: set by the path or the body, not the query")
        entry = (setter(fields, name), fields[-1].is_repeated)
        if len(self._setters) < _MAX_CACHED:  # bounded: clients choose these names
            self._setters[name] = entry
        return entry

    def apply(self, message: Message, query: str) -> None:
        """Set every parameter of `query` (still percent-encoded) on `message`.

        Raises FieldPathError for an unknown or unsettable name (or a singular field given
        twice) and FieldValueError for a bad value.
        """
        seen: set[str] = set()
        for name, value in parse_qsl(query, keep_blank_values=True):
            set_field, repeated = self._setter(name)
            if not repeated:
                if name in seen:
                    raise FieldPathError(f"{name!r}: given more than once")
                seen.add(name)
            set_field(message, value)

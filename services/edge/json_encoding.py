"""Response messages to proto3 JSON values, by encoders compiled once per message type.

`json_format.MessageToDict` walks the descriptor of every field of every reply at run time
(about 18 µs for PayNow's Account, the largest single cost the edge adds to a call after
gRPC itself). The encoders here decide everything a descriptor can tell at start-up, so per
reply they only read fields and convert values: the same JSON values as
`MessageToDict(..., always_print_fields_with_no_presence=True)`, proven equal by a
differential property test (tests/edge/test_properties.py).

Keys come out in declaration order, as Go's protojson (and so grpc-gateway) writes them;
json_format writes populated fields first. Any, Struct, Value, ListValue and messages with
extensions are left to json_format, whose rules for them (type URLs, NaN refusals) are
worth keeping in one place.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

__all__ = ["MessageEncoder", "compile_encoder"]

# Takes a message of the type it was compiled for (Any: generated classes are typed only in
# their stubs, and the edge builds its classes from descriptors at run time).
MessageEncoder = Callable[[Any], Any]
_Convert = Callable[[Any], Any]

_F = FieldDescriptor
_INT64 = frozenset({_F.CPPTYPE_INT64, _F.CPPTYPE_UINT64})
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
# Their own ToJsonString is the spec's string form (RFC 3339, "1.5s", lowerCamel paths).
_TO_JSON_STRING = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
_DELEGATED = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
    }
)


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _float(value: float) -> Any:
    if math.isfinite(value):
        return type_checkers.ToShortestFloat(value)
    return _double(value)


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


class _Compiler:
    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool
        self._encoders: dict[str, MessageEncoder] = {}

    def message(self, descriptor: Descriptor) -> MessageEncoder:
        name = descriptor.full_name
        found = self._encoders.get(name)
        if found is not None:
            return found
        # A message type can contain itself: callers get a forwarder that reads the slot
        # filled below, so recursion compiles each type once.
        slot: list[MessageEncoder] = []

        def forward(message: Message) -> Any:
            return slot[0](message)

        self._encoders[name] = forward
        encoder = self._compile(descriptor)
        slot.append(encoder)
        self._encoders[name] = encoder
        return encoder

    def delegated(self) -> MessageEncoder:
        """json_format's encoding, for what this module leaves to it."""
        pool = self._pool
        return lambda message: json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True, descriptor_pool=pool
        )

    def _compile(self, descriptor: Descriptor) -> MessageEncoder:
        name = descriptor.full_name
        if name in _WRAPPERS:
            convert = self._scalar(descriptor.fields_by_name["value"])
            return lambda message: convert(message.value)
        if name in _TO_JSON_STRING:
            return lambda message: message.ToJsonString()
        if name in _DELEGATED or descriptor.extension_ranges:
            return self.delegated()
        plan = tuple(
            (field.json_name, field.name, field.has_presence, self._field(field))
            for field in descriptor.fields
        )

        def encode(message: Message) -> dict[str, Any]:
            out = {}
            for key, attribute, presence, convert in plan:
                if presence and not message.HasField(attribute):
                    continue
                out[key] = convert(getattr(message, attribute))
            return out

        return encode

    def _field(self, field: FieldDescriptor) -> _Convert:
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            convert_key = _map_key
            convert_value = self._scalar(message_type.fields_by_name["value"])
            return lambda entries: {convert_key(k): convert_value(entries[k]) for k in entries}
        convert = self._scalar(field)
        if field.is_repeated:
            return lambda values: [convert(value) for value in values]
        return convert

    def _scalar(self, field: FieldDescriptor) -> _Convert:  # noqa: PLR0911 (one per kind)
        """The conversion of one value of `field` (an element, for a repeated field)."""
        cpp_type = field.cpp_type
        if field.message_type is not None:
            return self.message(field.message_type)
        if cpp_type == _F.CPPTYPE_ENUM:
            return _enum(field)
        if cpp_type in _INT64:
            return str
        if cpp_type == _F.CPPTYPE_DOUBLE:
            return _double
        if cpp_type == _F.CPPTYPE_FLOAT:
            return _float
        if field.type == _F.TYPE_BYTES:
            return _bytes
        return _same  # string, bool, 32-bit integers: JSON already has them


def _same(value: Any) -> Any:
    return value


def _enum(field: FieldDescriptor) -> _Convert:
    enum_type = field.enum_type
    assert enum_type is not None  # an enum field's
    if enum_type.full_name == "google.protobuf.NullValue":
        return lambda _value: None
    names = {value.number: value.name for value in enum_type.values}
    if enum_type.is_closed:

        def closed(number: int) -> str:
            name = names.get(number)
            if name is None:
                raise json_format.SerializeToJsonError(
                    f"{field.full_name}: {number} is not a value of {enum_type.full_name}"
                )
            return name

        return closed
    # An open enum keeps numbers it does not know (a newer backend's values) as numbers.
    return lambda number: names.get(number, number)


def compile_encoder(descriptor: Descriptor, pool: descriptor_pool.DescriptorPool) -> MessageEncoder:
    """The encoder of `descriptor`'s messages: message → the JSON value `MessageToDict`
    gives with `always_print_fields_with_no_presence=True`. Raises
    json_format.SerializeToJsonError on a closed enum's unknown number, as json_format does."""
    compiler = _Compiler(pool)
    if _has_json_enum_names():
        # Enum values may carry their own JSON names (`pb.enumvalue.json`): json_format
        # knows where to read them, so it encodes everything.
        return compiler.delegated()
    return compiler.message(descriptor)


def _has_json_enum_names() -> bool:
    try:
        descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return False
    return True

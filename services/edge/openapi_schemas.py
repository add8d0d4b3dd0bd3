"""JSON Schemas of messages, following the proto3 JSON mapping the edge speaks.

    int64, uint64, fixed64 …   string, format int64 (JSON numbers lose precision past 2^53)
    bytes                      string, base64
    enum                       string, one of the value names
    Timestamp / Duration       string date-time / string like `1.5s`
    FieldMask                  string, comma-separated lowerCamel paths
    wrappers                   the wrapped scalar or null
    Struct / Value / ListValue object / any JSON / array
    Any                        object with `@type`;   Empty: object

Field names are their `json_name` (lowerCamel), as the edge writes them. field_behavior
becomes `required`, `readOnly` (OUTPUT_ONLY) and `writeOnly` (INPUT_ONLY); the simple
protovalidate rules become lengths, patterns, formats and bounds.
"""

from __future__ import annotations

from typing import Any

from buf.validate import validate_pb2
from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from .descriptors import SourceInfo

__all__ = ["SchemaBuilder", "is_map", "scalar_form"]

Schema = dict[str, Any]
_F = FieldDescriptor
_FB = field_behavior_pb2
_INT64 = {_F.TYPE_INT64, _F.TYPE_SINT64, _F.TYPE_SFIXED64, _F.TYPE_UINT64, _F.TYPE_FIXED64}
_INT32 = {_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32}
_UINT32 = {_F.TYPE_UINT32, _F.TYPE_FIXED32}
_SIMPLE: dict[int, Schema] = {
    **{kind: {"type": "integer", "format": "int32"} for kind in _INT32},
    **{
        kind: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
        for kind in _UINT32
    },
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_NUMERIC_RULES = {"int32", "int64", "uint32", "uint64", "sint32", "sint64", "double", "float"}
_NUMERIC_RULES |= {"fixed32", "fixed64", "sfixed32", "sfixed64"}
# Doubles may be NaN or infinite, which proto3 JSON writes as these strings.
_NON_FINITE = ["NaN", "Infinity", "-Infinity"]
_REF = "#/components/schemas/"
_WKT: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
}
_WRAPPED = ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
_WRAPPERS = {f"google.protobuf.{name}Value" for name in _WRAPPED}
ANY = "google.protobuf.Any"
_ANY_SCHEMA: Schema = {
    "type": "object",
    "description": "A message of any type, named by `@type`; its other members are that "
    "message's fields in JSON (or `value` for types with a JSON form of their own).",
    "properties": {"@type": {"type": "string", "description": "`type.googleapis.com/<name>`"}},
    "required": ["@type"],
    "additionalProperties": True,
}


def is_map(field: FieldDescriptor) -> bool:
    """True for a `map<…>` field."""
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _nullable(schema: Schema) -> Schema:
    kind = schema["type"]
    return {**schema, "type": [*kind, "null"] if isinstance(kind, list) else [kind, "null"]}


def _scalar(field: FieldDescriptor) -> Schema:
    kind = field.type
    if kind in _INT64:
        return {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
    if kind in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        fmt = "double" if kind == _F.TYPE_DOUBLE else "float"
        return {"anyOf": [{"type": "number", "format": fmt}, {"enum": _NON_FINITE}]}
    return dict(_SIMPLE.get(kind, {"type": "string"}))


def scalar_form(message: Descriptor) -> Schema | None:
    """The schema of a well-known type whose JSON is not a plain object, else None."""
    name = message.full_name
    if name in _WKT:
        return dict(_WKT[name])
    if name in _WRAPPERS:
        inner = _scalar(message.fields_by_name["value"])
        return {"anyOf": [inner, {"type": "null"}]} if "anyOf" in inner else _nullable(inner)
    return None


def _bounds(rules: Any, schema: Schema, notes: list[str]) -> None:
    # gt/gte/lt/lte: JSON Schema bounds on numbers; a sentence on int64 (a string in JSON).
    keywords = {"gt": "exclusiveMinimum", "gte": "minimum", "lt": "exclusiveMaximum"}
    keywords["lte"] = "maximum"
    symbols = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
    for name, keyword in keywords.items():
        if rules.HasField(name):
            value = getattr(rules, name)
            if schema.get("type") == "string":
                notes.append(f"{symbols[name]} {value}")
            else:
                schema[keyword] = value


def _string_rules(rules: validate_pb2.StringRules, schema: Schema) -> None:
    if rules.HasField("len"):
        schema["minLength"] = schema["maxLength"] = rules.len
    if rules.HasField("min_len"):
        schema["minLength"] = rules.min_len
    if rules.HasField("max_len"):
        schema["maxLength"] = rules.max_len
    if rules.HasField("pattern"):
        schema["pattern"] = rules.pattern
    for kind in ("email", "uuid", "uri", "hostname", "ipv4", "ipv6"):
        if rules.HasField(kind) and getattr(rules, kind):
            schema["format"] = kind
    allowed = getattr(rules, "in")
    if allowed:
        schema["enum"] = list(allowed)


class SchemaBuilder:
    """Builds field and message schemas, collecting each message and enum once as a
    component named by its full proto name (`paynow.account.v1.Account`)."""

    def __init__(self, source: SourceInfo) -> None:
        self._source = source
        self.components: dict[str, Schema] = {}

    def ref(self, message: Descriptor) -> Schema:
        """A `$ref` to the message's component (built on first use), or a well-known
        type's inline schema."""
        inline = scalar_form(message)
        if inline is not None:
            return inline
        name = message.full_name
        if name not in self.components:
            self.components[name] = {}  # reserved first: messages may refer to themselves
            self.components[name] = _ANY_SCHEMA if name == ANY else self.object_schema(message)
        return {"$ref": _REF + name}

    def enum_ref(self, enum: EnumDescriptor) -> Schema:
        """A `$ref` to the enum's component: a string, one of the value names."""
        name = enum.full_name
        if name == "google.protobuf.NullValue":
            return {"type": "null"}
        if name not in self.components:
            lines = [self._source.comment(name)]
            for value in enum.values:
                note = self._source.comment(f"{name}.{value.name}")
                lines.append(f"- `{value.name}`" + (f": {note}" if note else ""))
            self.components[name] = {
                "type": "string",
                "enum": [value.name for value in enum.values],
                "description": "\n".join(line for line in lines if line),
            }
        return {"$ref": _REF + name}

    def object_schema(self, message: Descriptor, omit: frozenset[str] = frozenset()) -> Schema:
        """The message as a JSON object, leaving out the fields named in `omit`."""
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in omit:
                continue
            properties[field.json_name] = self.field_schema(field)
            if self.is_required(field):
                required.append(field.json_name)
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self._source.comment(message.full_name)
        if description:
            schema["description"] = description
        return schema

    def behaviors(self, field: FieldDescriptor) -> set[int]:
        """The field's google.api.field_behavior values."""
        options = self._source.field_options(field.full_name)
        return set(options.Extensions[_FB.field_behavior])

    def is_required(self, field: FieldDescriptor) -> bool:
        """REQUIRED by field_behavior, or `(buf.validate.field).required`."""
        options = self._source.field_options(field.full_name)
        return (
            _FB.REQUIRED in self.behaviors(field) or options.Extensions[validate_pb2.field].required
        )

    def value_schema(self, field: FieldDescriptor) -> Schema:
        """The schema of the field's JSON value (arrays and maps included), with its rules."""
        if field.message_type is not None and is_map(field):
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        single = self._single(field)
        rules = self._source.field_options(field.full_name).Extensions[validate_pb2.field]
        if not field.is_repeated:
            return self._with_rules(single, rules, field.enum_type)
        items = single
        if rules.HasField("repeated"):
            items = self._with_rules(single, rules.repeated.items, field.enum_type)
        array: Schema = {"type": "array", "items": items}
        if rules.repeated.HasField("min_items"):
            array["minItems"] = rules.repeated.min_items
        if rules.repeated.HasField("max_items"):
            array["maxItems"] = rules.repeated.max_items
        return array

    def field_schema(self, field: FieldDescriptor) -> Schema:
        """`value_schema` plus the field's description and readOnly/writeOnly."""
        schema = self.value_schema(field)
        behaviors = self.behaviors(field)
        description = self._source.comment(field.full_name)
        if "description" in schema:  # a rule that JSON Schema cannot say (int64 bounds)
            description = (description + "\n\n" if description else "") + schema["description"]
        if _FB.IMMUTABLE in behaviors:
            description = (description + "\n\n" if description else "") + (
                "Immutable: set when the resource is created, never changed afterwards."
            )
        if field.containing_oneof is not None and field.has_presence:
            oneof = field.containing_oneof
            if not oneof.name.startswith("_"):  # `optional` fields sit in synthetic oneofs
                others = [f.json_name for f in oneof.fields if f is not field]
                description += f"\n\nOne of `{oneof.name}`: excludes {', '.join(others)}."
        if description.strip():
            schema["description"] = description.strip()
        if _FB.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if _FB.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        return schema

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        return _scalar(field)

    def _with_rules(self, schema: Schema, rules: Any, enum: EnumDescriptor | None) -> Schema:
        kind = rules.WhichOneof("type")
        if kind is None:
            return schema
        typed = getattr(rules, kind)
        out = dict(schema)
        notes: list[str] = []
        if kind == "string":
            _string_rules(typed, out)
        elif kind in _NUMERIC_RULES:
            _bounds(typed, out, notes)
        elif kind == "enum" and typed.not_in and enum is not None:
            out["not"] = {"enum": [v.name for v in enum.values if v.number in typed.not_in]}
        if notes:
            out["description"] = "Must be " + " and ".join(notes) + "."
        if rules.ignore == validate_pb2.IGNORE_IF_ZERO_VALUE and out != schema and kind == "string":
            # The rules apply only to a non-empty value; "" (the default) is always accepted.
            return {"type": "string", "anyOf": [{"const": ""}, out]}
        return out

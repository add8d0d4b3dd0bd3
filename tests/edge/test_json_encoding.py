"""The edge's compiled response encoders give json_format's proto3 JSON for every field kind.

The reference is `json_format.MessageToDict(always_print_fields_with_no_presence=True)`,
what the edge used before: a differential property over random messages of a test proto
that holds every kind of field (tests/edge/protos/testing/encoding/v1/kinds.proto).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc_tools
import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.edge.json_encoding import compile_encoder
from services.edge.marshal import ResponseEncoder

PROTOS = Path(__file__).resolve().parent / "protos"
_F = FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, descriptor_pool.DescriptorPool]:
    """The Kinds message class, compiled from its proto into a pool of its own."""
    out = tmp_path_factory.mktemp("kinds") / "kinds.binpb"
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}",
         f"--descriptor_set_out={out}", "--include_imports", "testing/encoding/v1/kinds.proto"],
        check=True,
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    descriptor = pool.FindMessageTypeByName("testing.encoding.v1.Kinds")
    return message_factory.GetMessageClass(descriptor), pool


_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.1, -0.0, 1e-45, 3.4e38])
)


def _as_float32_range(x: float) -> float:
    return x if math.isnan(x) or abs(x) < 3.4e38 else math.copysign(math.inf, x)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:  # noqa: PLR0911 (one per kind)
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        return st.integers(low, high)
    if field.type == _F.TYPE_DOUBLE:
        return _FLOATS
    if field.type == _F.TYPE_FLOAT:
        return _FLOATS.map(_as_float32_range)
    if field.type == _F.TYPE_BOOL:
        return st.booleans()
    if field.type == _F.TYPE_STRING:
        return st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
    if field.type == _F.TYPE_BYTES:
        return st.binary(max_size=8)
    if field.type == _F.TYPE_ENUM:
        return st.sampled_from([0, 1, 2, 7])  # 7: a number the enum does not name
    raise AssertionError(field.full_name)


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:  # noqa: PLR0912
    """Set a random subset of `message`'s fields to random values."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.seconds = draw(st.integers(-62135596800, 253402300799))  # type: ignore[attr-defined]
        message.nanos = draw(st.integers(0, 999_999_999))  # type: ignore[attr-defined]
        return
    if name == "google.protobuf.Duration":
        seconds = draw(st.integers(-315576000000, 315576000000))
        message.seconds = seconds  # type: ignore[attr-defined]
        nanos = draw(st.integers(0, 999_999_999))
        message.nanos = -nanos if seconds < 0 else nanos  # type: ignore[attr-defined]
        return
    if name == "google.protobuf.FieldMask":
        path = st.from_regex(r"[a-z]+(_[a-z]+)?(\.[a-z]+)?", fullmatch=True)
        paths = draw(st.lists(path, max_size=3))
        message.paths.extend(paths)  # type: ignore[attr-defined]
        return
    if name == "google.protobuf.Any":
        if draw(st.booleans()):
            message.Pack(wrappers_pb2.StringValue(value=draw(st.text(max_size=4))))  # type: ignore[attr-defined]
        return
    if name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
        leaves = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
        value = draw(st.recursive(
            leaves | st.text(max_size=4),
            lambda inner: st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=3), inner, max_size=3),
            max_leaves=6,
        ))  # fmt: skip
        if name == "google.protobuf.Struct":
            value = {"k": value}
        elif name == "google.protobuf.ListValue":
            value = [value]
        json_format.ParseDict(value, message)
        return
    for field in _shuffled_fields(draw, message.DESCRIPTOR):
        if not draw(st.booleans()):
            continue
        value_type = field.message_type
        if value_type is not None and value_type.GetOptions().map_entry:
            key_field = value_type.fields_by_name["key"]
            value_field = value_type.fields_by_name["value"]
            entries = getattr(message, field.name)
            for key in draw(st.lists(_scalar(key_field), max_size=3)):
                if value_field.message_type is not None:
                    if depth > 0:
                        _fill(draw, entries[key], depth - 1)
                else:
                    entries[key] = draw(_scalar(value_field))
        elif field.message_type is not None:
            if depth <= 0:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    _fill(draw, getattr(message, field.name).add(), depth - 1)
            else:
                child = getattr(message, field.name)
                child.SetInParent()
                _fill(draw, child, depth - 1)
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field)))


@st.composite
def _filled(draw: st.DrawFn, message_class: Any) -> Message:
    message: Message = message_class()
    _fill(draw, message, depth=2)
    return message


def _shuffled_fields(draw: st.DrawFn, descriptor: Descriptor) -> list[FieldDescriptor]:
    # Shuffled, so that which member of a oneof ends up set varies too.
    return draw(st.permutations(list(descriptor.fields)))


def _same_json(got: Any, want: Any) -> bool:
    """Equal as JSON values; NaN (which never equals itself) compared as such."""
    return json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@settings(derandomize=True, database=None, deadline=None, max_examples=400,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(st.data())
def test_every_field_kind_encodes_as_json_format_does(kinds: Any, data: st.DataObject) -> None:
    """For any message, the compiled encoder's JSON value equals json_format's."""
    message_class, pool = kinds
    message = data.draw(_filled(message_class))
    want = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, descriptor_pool=pool
    )
    got = compile_encoder(message_class.DESCRIPTOR, pool)(message)
    assert _same_json(got, want)


def test_keys_come_out_in_declaration_order(kinds: Any) -> None:
    """As Go's protojson (grpc-gateway) writes them, not populated fields first."""
    message_class, pool = kinds
    message = message_class(f_string="set", maybe_name="x", counts=[1])
    keys = list(compile_encoder(message_class.DESCRIPTOR, pool)(message))
    declared = [field.json_name for field in message_class.DESCRIPTOR.fields]
    assert keys == [key for key in declared if key in keys]
    assert keys.index("fString") < keys.index("maybeName") < keys.index("counts")


def test_unpopulated_fields_follow_the_documented_rule(kinds: Any) -> None:
    """Fields without presence come out with their zero value; unset presence fields do not."""
    message_class, pool = kinds
    got = compile_encoder(message_class.DESCRIPTOR, pool)(message_class())
    assert got["fInt64"] == "0"
    assert got["color"] == "COLOR_UNSPECIFIED"
    assert got["counts"] == []
    assert got["byName"] == {}
    for absent in ("maybeCount", "child", "at", "big", "choiceText"):
        assert absent not in got


def test_a_self_containing_message_compiles_once_and_encodes_its_depth(kinds: Any) -> None:
    """A recursive type gets one encoder that follows the message as deep as it goes."""
    message_class, pool = kinds
    message = message_class()
    message.child.child.child.f_int32 = 5
    got = compile_encoder(message_class.DESCRIPTOR, pool)(message)
    assert got["child"]["child"]["child"]["fInt32"] == 5


def test_response_body_of_a_scalar_field_is_taken_from_the_whole_response(kinds: Any) -> None:
    """`response_body: "counts"` sends just that field's JSON."""
    message_class, pool = kinds
    encoder = ResponseEncoder(message_class.DESCRIPTOR, "counts", pool)
    body, content_type = encoder.encode(message_class(counts=[1, 2**40]))
    assert (body, content_type) == (b'["1","1099511627776"]', "application/json")

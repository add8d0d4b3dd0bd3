"""Matching proto3 JSON against expectations, and making plausible values from them.

An expectation is exact JSON, or a matcher `{"$match": kind, …}` for a value that changes:

    id         a server id: `prefix` then 26 characters of [0-9a-z]      (a string field)
    timestamp  an RFC 3339 time                                          (a Timestamp field)
    string     a non-empty string; `pattern` a regex it must match       (a string field)
    int64      an int64 in proto3 JSON (a decimal string); `min`         (a 64-bit field)
    etag       a non-empty opaque version tag                            (a string field)
    any        present, any value
    eachLike   a list of at least `min` (default 1) items, each like `like`

Objects list the fields that matter: others may be present (a new field is compatible).
Lists given literally must have exactly those items. The response's descriptor is walked
alongside, so a field the provider no longer declares, or declares with another type than
the matcher reads, is named too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor

from services.framework import ID_ALPHABET, ID_LENGTH, new_id

from ._format import FormatError

__all__ = ["check", "example_value", "request_problems"]

_F = descriptor.FieldDescriptor
_INT64 = {_F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_SINT64, _F.TYPE_FIXED64, _F.TYPE_SFIXED64}
_NUMBERS = {
    _F.TYPE_INT32,
    _F.TYPE_UINT32,
    _F.TYPE_SINT32,
    _F.TYPE_FIXED32,
    _F.TYPE_SFIXED32,
    _F.TYPE_FLOAT,
    _F.TYPE_DOUBLE,
    *_INT64,
}
_TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in vars(_F).items()
    if name.startswith("TYPE_") and isinstance(value, int)
}
_STRING_LIKE = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}
_MATCHERS = {"id", "timestamp", "string", "int64", "etag", "any", "eachLike"}
_TIMESTAMP = "google.protobuf.Timestamp"


def _declared(field: descriptor.FieldDescriptor) -> str:
    if field.type == _F.TYPE_MESSAGE:
        return field.message_type.full_name
    if field.type == _F.TYPE_ENUM:
        return f"enum {field.enum_type.full_name}"
    return _TYPE_NAMES[field.type]


def _is_matcher(value: Any) -> bool:
    return isinstance(value, dict) and "$match" in value


def _kind_fits(kind: str, field: descriptor.FieldDescriptor) -> bool:
    if kind in ("id", "string", "etag"):
        return field.type == _F.TYPE_STRING
    if kind == "int64":
        return field.type in _INT64
    if kind == "timestamp":
        return field.type == _F.TYPE_MESSAGE and field.message_type.full_name == _TIMESTAMP
    return True


def _literal_fits(value: Any, field: descriptor.FieldDescriptor) -> bool:
    if isinstance(value, str):
        if field.type == _F.TYPE_MESSAGE:
            return field.message_type.full_name in _STRING_LIKE
        if field.type == _F.TYPE_ENUM:
            return value in field.enum_type.values_by_name
        return field.type in {_F.TYPE_STRING, _F.TYPE_BYTES, *_INT64}
    if isinstance(value, bool):
        fits = field.type == _F.TYPE_BOOL
    elif isinstance(value, int | float):
        fits = field.type in _NUMBERS
    elif isinstance(value, dict):
        fits = field.type == _F.TYPE_MESSAGE
    else:
        fits = value is None
    return fits


def _empty(value: Any) -> bool:
    return value in ("", None)


class _Checker:
    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[str] = []

    def fail(self, path: str, text: str) -> None:
        self.problems.append(f"{self.label} {path}{text}")

    def retyped(self, path: str, reads: str, field: descriptor.FieldDescriptor) -> None:
        self.fail(path, f": the contract reads {reads}, the provider declares {_declared(field)}")

    def message(self, expected: Any, actual: Any, message_type: Any, path: str) -> None:
        if not isinstance(expected, dict):
            self.fail(path, f": expected {expected!r} where the schema has a message")
            return
        if not isinstance(actual, dict):
            self.fail(path, f": expected an object, got {actual!r}")
            return
        for key, want in expected.items():
            where = f"{path}.{key}" if path else key
            field = None
            if message_type is not None:
                field = message_type.fields_by_camelcase_name.get(key) or (
                    message_type.fields_by_name.get(key)
                )
                if field is None:
                    self.fail(where, " missing (the provider does not declare it)")
                    continue
            name = field.json_name if field is not None else key
            if name not in actual:
                self.fail(where, " missing")
                continue
            self.value(want, actual[name], field, where)

    def value(self, want: Any, got: Any, field: Any, path: str) -> None:
        repeated = field is not None and field.is_repeated
        if isinstance(want, list) or (_is_matcher(want) and want["$match"] == "eachLike"):
            if field is not None and not repeated:
                self.retyped(path, "a list", field)
            else:
                self.items(want, got, field, path)
        elif repeated:
            self.retyped(path, "one value", field)
        else:
            self.single(want, got, field, path)

    def items(self, want: Any, got: Any, field: Any, path: str) -> None:
        if isinstance(want, list):
            if not isinstance(got, list) or len(got) != len(want):
                self.fail(path, f": expected {len(want)} items, got {got!r}")
                return
            pairs = list(zip(want, got, strict=True))
        else:
            if not isinstance(got, list) or len(got) < want.get("min", 1):
                self.fail(path, f": expected at least {want.get('min', 1)} items, got {got!r}")
                return
            pairs = [(want["like"], item) for item in got]
        for i, (item, actual) in enumerate(pairs):
            self.single(item, actual, field, f"{path}[{i}]")

    def single(self, want: Any, got: Any, field: Any, path: str) -> None:
        if _is_matcher(want):
            kind = want["$match"]
            if kind not in _MATCHERS:
                raise ValueError(f"unknown matcher {kind!r} at {path}")
            if field is not None and not _kind_fits(kind, field):
                self.retyped(path, f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}", field)
                return
            self.matcher(kind, want, got, path)
            return
        if isinstance(want, dict):
            if field is not None and field.type != _F.TYPE_MESSAGE:
                self.retyped(path, "a message", field)
                return
            self.message(want, got, field.message_type if field is not None else None, path)
            return
        if field is not None and not _literal_fits(want, field):
            self.retyped(path, repr(want), field)
            return
        if isinstance(want, int) and not isinstance(want, bool) and isinstance(got, str):
            got = int(got) if re.fullmatch(r"-?\d+", got) else got
        if want != got:
            self.fail(path, f": expected {want!r}, got {got!r}")

    def matcher(self, kind: str, want: dict[str, Any], got: Any, path: str) -> None:
        if kind == "any":
            return
        if kind in ("id", "string", "etag", "timestamp") and _empty(got):
            self.fail(path, " missing")
            return
        if kind == "int64":
            if not isinstance(got, str) or not re.fullmatch(r"-?\d+", got):
                self.fail(path, f": expected an int64 (proto3 JSON decimal string), got {got!r}")
            elif "min" in want and int(got) < int(want["min"]):
                self.fail(path, f": expected at least {want['min']}, got {got}")
            return
        if not isinstance(got, str):
            self.fail(path, f": expected a {kind} string, got {got!r}")
        elif kind == "id":
            prefix = want.get("prefix", "")
            tail = got.removeprefix(prefix)
            if not got.startswith(prefix) or len(tail) != ID_LENGTH or set(tail) - set(ID_ALPHABET):
                self.fail(path, f": expected an id {prefix}<26 of [0-9a-z]>, got {got!r}")
        elif kind == "timestamp":
            try:
                datetime.fromisoformat(got)
            except ValueError:
                self.fail(path, f": expected an RFC 3339 timestamp, got {got!r}")
        elif kind == "string" and "pattern" in want and not re.fullmatch(want["pattern"], got):
            self.fail(path, f": expected a string matching {want['pattern']!r}, got {got!r}")


def check(
    expected: Any, actual: Any, message_type: Any, label: str = "response field"
) -> list[str]:
    """The differences between `actual` (proto3 JSON with defaults) and `expected`, one
    sentence each, naming the field (`response field transfer.id missing`)."""
    checker = _Checker(label)
    checker.message(expected, actual, message_type, "")
    return checker.problems


def _matcher_example(matcher: dict[str, Any]) -> Any:
    kind = matcher["$match"]
    if "example" in matcher:
        return matcher["example"]
    if "pattern" in matcher:
        raise FormatError(f"a matcher with a pattern needs an `example` for stubs: {matcher}")
    if kind == "eachLike":
        return [example_value(matcher["like"]) for _ in range(max(matcher.get("min", 1), 1))]
    if kind == "id":
        prefix = matcher.get("prefix", "id_")
        head = prefix.removesuffix("_")
        return new_id(head) if re.fullmatch("[a-z]{2,4}", head) else prefix + new_id("id")[3:]
    if kind == "timestamp":
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"string": "example", "int64": str(matcher.get("min", 1)), "etag": "v1"}.get(kind)


def example_value(expected: Any) -> Any:
    """A plausible value for an expectation: a fresh id with the prefix, now for a
    timestamp, the matcher's `example` if it gives one. `any` without example is dropped."""
    if _is_matcher(expected):
        return _matcher_example(expected)
    if isinstance(expected, dict):
        built = {key: example_value(value) for key, value in expected.items()}
        return {key: value for key, value in built.items() if value is not None}
    if isinstance(expected, list):
        return [example_value(item) for item in expected]
    return expected


def request_problems(expected: Any, actual: Any, path: str = "") -> list[str]:
    """How a request a consumer sent (proto3 JSON, set fields only) differs from the
    contract's request, already rendered; templates were replaced by what they bound."""
    problems: list[str] = []
    if isinstance(expected, dict) and not _is_matcher(expected):
        if not isinstance(actual, dict):
            return [f"request field {path or '(root)'}: expected an object, got {actual!r}"]
        for key, want in expected.items():
            where = f"{path}.{key}" if path else key
            if key not in actual:
                if want not in (0, "0", "", False, [], {}, None):
                    problems.append(f"request field {where} missing")
                continue
            problems += request_problems(want, actual[key], where)
        problems += [
            f"request field {f'{path}.{key}' if path else key} is not in the contract"
            for key in actual
            if key not in expected
        ]
        return problems
    if _is_matcher(expected):
        checker = _Checker("request field")
        checker.single(expected, actual, None, path)
        return checker.problems
    if isinstance(expected, int) and not isinstance(expected, bool) and isinstance(actual, str):
        actual = int(actual) if re.fullmatch(r"-?\d+", actual) else actual
    if expected != actual:
        return [f"request field {path}: expected {expected!r}, got {actual!r}"]
    return []

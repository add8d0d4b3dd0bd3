"""Bodies: request JSON into messages, response messages into JSON or raw HttpBody bytes.

Unpopulated fields ARE emitted (`always_print_fields_with_no_presence`): a balance of 0 comes
out as `"balanceMinor": "0"`, not as a missing key, so clients see one stable shape per
resource and never mistake "zero" for "absent". Fields with explicit presence (messages,
`optional` scalars) stay omitted when unset, which keeps "not set" distinguishable.
grpc-gateway emits unpopulated fields only with its EmitUnpopulated option; we turn it on.
"""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from .errors import EdgeError
from .json_encoding import compile_encoder

__all__ = ["DEFAULT_JSON_DEPTH", "HTTP_BODY", "BodyDecoder", "ResponseEncoder", "too_deep"]

HTTP_BODY = "google.api.HttpBody"
_JSON = "application/json"
DEFAULT_JSON_DEPTH = 32
# Built once: json.dumps with any option set builds a new JSONEncoder per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# Brackets, and whole strings (whose brackets do not nest anything) skipped in one match.
_NESTING = re.compile(rb'[\[\]{}]|"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = frozenset(b"[{")


def too_deep(body: bytes, limit: int) -> bool:
    """Whether `body`'s JSON nests deeper than `limit`, found without parsing it: json.loads
    recurses once per level, so a body of a million `[` would exhaust the stack first."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than it has openers: the usual case, two C scans
    encoding = json.detect_encoding(body)
    if encoding != "utf-8":
        # json.loads also reads UTF-16 and UTF-32, whose code units may hold a 0x22 byte
        # (U+0122 is `22 01`) that would throw the scan out of step with the strings and
        # hide brackets from it: scan the UTF-8 of the text json.loads would parse.
        try:
            body = body.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
        except UnicodeError:
            return False  # json.loads cannot decode it either: MALFORMED_JSON
    depth = 0
    for match in _NESTING.finditer(body):
        first = match.group()[0]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first != 0x22:  # a closer; a string (starts with `"`) changes nothing
            depth -= 1
    return False


def _bad_request(reason: str, message: str) -> EdgeError:
    return EdgeError(400, grpc.StatusCode.INVALID_ARGUMENT, reason, message)


class BodyDecoder:
    """Fills a request message from the HTTP body, per the rule's `body` ("*", a field, "")."""

    def __init__(self, message: Descriptor, body: str, pool: descriptor_pool.DescriptorPool):
        self._pool = pool
        self.field: FieldDescriptor | None = None
        self._raw = message.full_name == HTTP_BODY and body == "*"
        if body and body != "*":
            field = message.fields_by_name.get(body)
            if field is None:
                raise ValueError(f"{message.full_name}: body field {body!r} does not exist")
            self.field = field
            self._raw = field.message_type is not None and field.message_type.full_name == HTTP_BODY
        self.takes_body = bool(body)

    def decode(
        self,
        body: bytes,
        content_type: str,
        message: Message,
        max_depth: int = DEFAULT_JSON_DEPTH,
    ) -> None:
        """Merge `body` into `message`; raises EdgeError 400 for malformed JSON, JSON nested
        deeper than `max_depth`, an unknown field (named) or a value of the wrong type."""
        if self._raw:
            target: Any = message if self.field is None else getattr(message, self.field.name)
            target.content_type = content_type
            target.data = body
            return
        if not body.strip():
            return  # an empty body is an empty message, as grpc-gateway treats EOF
        if too_deep(body, max_depth):
            raise EdgeError(
                400,
                grpc.StatusCode.INVALID_ARGUMENT,
                "JSON_TOO_DEEP",
                f"the body nests JSON deeper than {max_depth} levels",
                metadata={"limit": str(max_depth)},
            )
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad_request("MALFORMED_JSON", f"the body is not valid JSON: {exc}") from None
        if self.field is not None:
            value = {self.field.name: value}
        elif not isinstance(value, dict):
            raise _bad_request("MALFORMED_JSON", "the body must be a JSON object")
        try:
            json_format.ParseDict(value, message, descriptor_pool=self._pool)
        except json_format.ParseError as exc:
            text = str(exc)
            reason = "UNKNOWN_FIELD" if "no field named" in text else "INVALID_FIELD_VALUE"
            raise _bad_request(reason, text) from None
        except OverflowError as exc:
            # json_format lets float() fail through for a double given an integer past
            # float range (`{"rating": 1e999}` is a ParseError, `10**400` written out is not).
            raise _bad_request("INVALID_FIELD_VALUE", f"number out of range: {exc}") from None


class ResponseEncoder:
    """Serializes a response (or its `response_body` field) as JSON, or HttpBody as bytes."""

    def __init__(
        self, message: Descriptor, response_body: str, pool: descriptor_pool.DescriptorPool
    ):
        self._field: FieldDescriptor | None = None
        target = message
        if response_body:
            field = message.fields_by_name.get(response_body)
            if field is None:
                raise ValueError(f"{message.full_name}: response_body {response_body!r} unknown")
            self._field = field
            if field.message_type is not None and not field.is_repeated:
                target = field.message_type
        self.raw = target.full_name == HTTP_BODY
        # The whole response's encoder; for a response_body field, the field's message type's
        # (a scalar or repeated field is taken out of the whole response's JSON).
        self._to_json = compile_encoder(target, pool)

    def encode(self, message: Message) -> tuple[bytes, str]:
        """The body bytes and their content type."""
        field = self._field
        if self.raw:
            raw: Any = message if field is None else getattr(message, field.name)
            return raw.data, raw.content_type or "application/octet-stream"
        if field is None:
            value = self._to_json(message)
        elif field.message_type is not None and not field.is_repeated:
            value = self._to_json(getattr(message, field.name))
        else:
            value = self._to_json(message).get(field.json_name)
        return _dumps(value).encode(), _JSON

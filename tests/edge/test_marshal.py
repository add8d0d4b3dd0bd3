"""Bodies in and out: proto3 JSON, body field rules, response_body and HttpBody."""

from __future__ import annotations

import json

import pytest
from google.protobuf import descriptor_pool, message_factory

from services.edge.descriptors import MethodSpec
from services.edge.errors import EdgeError
from services.edge.marshal import BodyDecoder, ResponseEncoder, too_deep

Library = tuple[descriptor_pool.DescriptorPool, dict[str, MethodSpec]]


def _decode(library: Library, method: str, body_rule: str, body: bytes) -> object:
    pool, methods = library
    spec = methods[method]
    message = message_factory.GetMessageClass(spec.input)()
    BodyDecoder(spec.input, body_rule, pool).decode(body, "application/json", message)
    return message


def test_body_star_accepts_both_spellings(library: Library) -> None:
    """`idempotency_key` and `idempotencyKey` are both accepted in a body."""
    one = _decode(library, "CheckoutBook", "*", b'{"idempotency_key": "a", "borrower": "b"}')
    two = _decode(library, "CheckoutBook", "*", b'{"idempotencyKey": "a", "borrower": "b"}')
    assert one == two


def test_body_field_fills_only_that_field(library: Library) -> None:
    """`body: "book"` parses the JSON as the book; int64 may come as a string."""
    message = _decode(library, "CreateBook", "book", b'{"title": "T", "pageCount": "7"}')
    assert message.book.title == "T"
    assert message.book.page_count == 7


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{nope", "MALFORMED_JSON"),
        (b"[1]", "MALFORMED_JSON"),
        (b'{"nope": 1}', "UNKNOWN_FIELD"),
        (b'{"borrower": 5}', "INVALID_FIELD_VALUE"),
    ],
)
def test_bad_bodies_are_400_with_a_reason(library: Library, body: bytes, reason: str) -> None:
    """Malformed JSON, an unknown field and a wrong type are each a 400 with their reason."""
    with pytest.raises(EdgeError) as caught:
        _decode(library, "CheckoutBook", "*", body)
    assert (caught.value.status, caught.value.reason) == (400, reason)


def test_unknown_field_is_named(library: Library) -> None:
    """The 400 message names the field the client got wrong."""
    with pytest.raises(EdgeError, match="colour"):
        _decode(library, "CheckoutBook", "*", b'{"colour": "red"}')


def test_empty_body_is_an_empty_message(library: Library) -> None:
    """No body at all leaves the message unset, as grpc-gateway treats EOF."""
    assert _decode(library, "CheckoutBook", "*", b"") == _decode(
        library, "CheckoutBook", "*", b"{}"
    )


def _encode(
    library: Library, method: str, response_body: str, **fields: object
) -> tuple[bytes, str]:
    pool, methods = library
    spec = methods[method]
    reply = message_factory.GetMessageClass(spec.output)(**fields)
    return ResponseEncoder(spec.output, response_body, pool).encode(reply)


def test_response_is_lower_camel_with_int64_as_string_and_unpopulated_fields(
    library: Library,
) -> None:
    """Out: lowerCamel names, int64 as a string, zero values present, unset messages absent."""
    body, content_type = _encode(library, "GetBook", "", name="b", page_count=2**40)
    assert content_type == "application/json"
    assert json.loads(body) == {
        "name": "b",
        "title": "",
        "pageCount": "1099511627776",
        "genre": "GENRE_UNSPECIFIED",
    }


def test_response_body_selects_one_field(library: Library) -> None:
    """`response_body: "theme"` sends just that field's JSON value."""
    assert _encode(library, "GetShelfTheme", "theme", theme="red")[0] == b'"red"'


def test_http_body_response_is_raw_bytes_with_its_content_type(library: Library) -> None:
    """google.api.HttpBody goes out as its data, with its content type."""
    assert _encode(library, "GetBookCover", "", content_type="image/png", data=b"\x89PNG") == (
        b"\x89PNG",
        "image/png",
    )


def test_json_nested_past_the_limit_is_refused_naming_it(library: Library) -> None:
    """A body nesting deeper than the limit is 400 JSON_TOO_DEEP with the limit."""
    body = b'{"borrower": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(EdgeError) as caught:
        _decode(library, "CheckoutBook", "*", body)
    assert (caught.value.status, caught.value.reason) == (400, "JSON_TOO_DEEP")
    assert caught.value.metadata == {"limit": "32"}


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """`[` and `{` in a JSON string (escaped quotes too) leave the depth unchanged."""
    assert not too_deep(b'{"a": "%s\\"[[{"}' % (b"[{" * 100), 2)


def test_nesting_at_the_limit_is_allowed() -> None:
    """Exactly `limit` levels pass; one more does not."""
    assert not too_deep(b"[" * 32 + b"]" * 32 + b"[]" * 40, 32)
    assert too_deep(b"[" * 33 + b"]" * 33, 32)

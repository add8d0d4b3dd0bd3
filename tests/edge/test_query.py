"""Query parameters and path values: names, conversions, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pool, json_format, message_factory

from services.edge.descriptors import MethodSpec
from services.edge.query import FieldPathError, FieldValueError, QueryBinder

Library = tuple[descriptor_pool.DescriptorPool, dict[str, MethodSpec]]


def _search(library: Library, query: str, excluded: tuple[str, ...] = ()) -> dict[str, Any]:
    spec = library[1]["SearchBooks"]
    message = message_factory.GetMessageClass(spec.input)()
    QueryBinder(spec.input, excluded, allowed=True).apply(message, query)
    return json_format.MessageToDict(message)


def test_nested_field_by_proto_or_json_name(library: Library) -> None:
    """`filter.author.display_name` and `filter.author.displayName` both set the field."""
    assert _search(library, "filter.author.display_name=Ann") == {
        "filter": {"author": {"displayName": "Ann"}}
    }
    assert _search(library, "filter.author.displayName=Bo")["filter"]["author"] == {
        "displayName": "Bo"
    }


def test_repeated_field_collects_every_occurrence(library: Library) -> None:
    """`tags=a&tags=b` and `years=1&years=2` append in order."""
    assert _search(library, "tags=a&tags=b&years=1999&years=2000") == {
        "tags": ["a", "b"],
        "years": [1999, 2000],
    }


def test_enum_by_name_or_number(library: Library) -> None:
    """An enum accepts its value name or its number."""
    assert _search(library, "genre=GENRE_HISTORY")["genre"] == "GENRE_HISTORY"
    assert _search(library, "genre=1")["genre"] == "GENRE_FICTION"


def test_well_known_types_in_their_json_forms(library: Library) -> None:
    """Timestamp, Duration, FieldMask and wrappers take their proto3 JSON string forms."""
    got = _search(
        library,
        "after=2024-01-02T03:04:05Z&max_age=1.5s&read_mask=title,author.displayName"
        "&max_price=12&note=hello",
    )
    assert got == {
        "after": "2024-01-02T03:04:05Z",
        "maxAge": "1.500s",
        "readMask": "title,author.displayName",
        "maxPrice": "12",
        "note": "hello",
    }


def test_scalars_convert_and_decode(library: Library) -> None:
    """int64, bool, double and base64 bytes convert; `+` and %XX are decoded."""
    got = _search(library, "min_pages=12&in_print=true&rating=4.5&cursor=AQI&shelf_id=a+b%2F")
    assert got == {
        "minPages": "12",
        "inPrint": True,
        "rating": 4.5,
        "cursor": "AQI=",
        "shelfId": "a b/",
    }


@pytest.mark.parametrize(
    "query",
    ["nope=1", "filter.nope=1", "filter=1", "shelf_id=x"],
)
def test_unknown_or_unsettable_names_are_refused(library: Library, query: str) -> None:
    """An unknown name, a message, or a field bound by the path raises FieldPathError."""
    with pytest.raises(FieldPathError):
        _search(library, query, excluded=("shelf_id",))


@pytest.mark.parametrize(
    "query",
    ["min_pages=x", "in_print=yes", "genre=GENRE_NOPE", "after=yesterday", "rating=fast"],
)
def test_wrong_type_names_the_parameter(library: Library, query: str) -> None:
    """A value the field cannot hold raises FieldValueError naming the parameter."""
    name = query.split("=", maxsplit=1)[0]
    with pytest.raises(FieldValueError, match=name):
        _search(library, query)


def test_singular_field_given_twice_is_refused(library: Library) -> None:
    """`genre=1&genre=2` is ambiguous, so it is an error, not last-wins."""
    with pytest.raises(FieldPathError, match="more than once"):
        _search(library, "genre=1&genre=2")


def test_body_star_methods_take_no_query(library: Library) -> None:
    """With `body: "*"` every field comes from the path or body."""
    spec = library[1]["CheckoutBook"]
    message = message_factory.GetMessageClass(spec.input)()
    with pytest.raises(FieldPathError):
        QueryBinder(spec.input, (), allowed=False).apply(message, "borrower=x")

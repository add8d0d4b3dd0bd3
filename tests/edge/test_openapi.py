"""The OpenAPI document: valid 3.1 for PayNow and the test library, and each mapping rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pool
from openapi_spec_validator import validate

from services.edge.auth import INTERNAL
from services.edge.descriptors import MethodSpec, load_descriptor_set
from services.edge.openapi import build_openapi, openapi_json

ROOT = Path(__file__).resolve().parents[2]
PAYNOW_SET = ROOT / "generated" / "paynow" / "descriptor_set.binpb"
LIB = "testing.library.v1."
PAY = "paynow.merchant.v1."


@pytest.fixture(scope="module")
def doc(library: tuple[descriptor_pool.DescriptorPool, dict[str, MethodSpec]]) -> Any:
    return build_openapi(library[1].values())


@pytest.fixture(scope="module")
def paynow() -> Any:
    return build_openapi(load_descriptor_set(PAYNOW_SET, INTERNAL)[1])


def schema(document: Any, name: str) -> Any:
    return document["components"]["schemas"][name]


def operation(document: Any, method: str, path: str) -> Any:
    return document["paths"][path][method]


def params(op: Any) -> dict[str, Any]:
    return {p["name"]: p for p in op.get("parameters", [])}


def test_paynow_document_is_valid_openapi_3_1(paynow: Any) -> None:
    """openapi-spec-validator accepts PayNow's document as OpenAPI 3.1."""
    assert paynow["openapi"] == "3.1.0"
    validate(paynow)


def test_library_document_is_valid_openapi_3_1(doc: Any) -> None:
    """openapi-spec-validator accepts the test library's document as OpenAPI 3.1."""
    validate(doc)


def test_committed_document_matches_the_protos(paynow: Any) -> None:
    """docs/openapi.json is what `make openapi` writes now."""
    assert (ROOT / "docs" / "openapi.json").read_bytes() == openapi_json(paynow)


def test_int64_is_a_string_with_format_int64(doc: Any) -> None:
    """Shelf.book_count (int64) is a JSON string of digits."""
    prop = schema(doc, LIB + "Shelf")["properties"]["bookCount"]
    assert (prop["type"], prop["format"]) == ("string", "int64")


def test_properties_use_lower_camel_json_names(doc: Any) -> None:
    """Fields are named by json_name, as the edge writes them."""
    assert set(schema(doc, LIB + "Book")["properties"]) == {
        "name", "title", "author", "genre", "pageCount", "publishTime",
    }  # fmt: skip


def test_required_field_behavior_is_listed_as_required(paynow: Any) -> None:
    """REQUIRED fields of RegisterRequest are in its `required`, the optional one is not."""
    required = schema(paynow, "paynow.auth.v1.RegisterRequest")["required"]
    assert required == ["email", "password", "displayName"]


def test_output_only_is_read_only(paynow: Any) -> None:
    """Payment.state is OUTPUT_ONLY: readOnly."""
    assert schema(paynow, PAY + "Payment")["properties"]["state"]["readOnly"] is True


def test_input_only_is_write_only(paynow: Any) -> None:
    """RegisterRequest.password is INPUT_ONLY: writeOnly."""
    password = schema(paynow, "paynow.auth.v1.RegisterRequest")["properties"]["password"]
    assert password["writeOnly"] is True


def test_immutable_is_noted_in_the_description(paynow: Any) -> None:
    """Account.email is IMMUTABLE: its description says so."""
    email = schema(paynow, "paynow.account.v1.Account")["properties"]["email"]
    assert "Immutable" in email["description"]


def test_enum_is_a_string_of_value_names_with_their_comments(doc: Any) -> None:
    """Genre lists its names, and each value's comment is in the description."""
    genre = schema(doc, LIB + "Genre")
    assert genre["enum"] == ["GENRE_UNSPECIFIED", "GENRE_FICTION", "GENRE_HISTORY"]
    assert "- `GENRE_FICTION`: Made up." in genre["description"]


def test_well_known_types_take_their_json_forms(doc: Any) -> None:
    """Timestamp, Duration, FieldMask, wrappers and bytes, as proto3 JSON writes them."""
    search = params(operation(doc, "get", "/v1/shelves/{shelf_id}/books:search"))
    assert search["after"]["schema"]["format"] == "date-time"
    assert search["maxAge"]["schema"]["pattern"].endswith("s$")
    assert search["readMask"]["schema"]["type"] == "string"
    assert search["maxPrice"]["schema"]["type"] == ["string", "null"]
    assert search["cursor"]["schema"]["contentEncoding"] == "base64"


def test_rpc_comment_gives_summary_and_description(doc: Any) -> None:
    """The RPC's comment is the operation's description; its first sentence the summary."""
    op = operation(doc, "get", "/v1/shelves/{shelf_id}/theme")
    assert op["summary"] == "Only the theme of a shelf (response_body)"
    assert op["description"] == "Only the theme of a shelf (response_body)."


def test_operation_id_and_tag_name_the_service_and_method(doc: Any) -> None:
    """operationId is `<Service>_<Method>`; the tag is the service."""
    op = operation(doc, "get", "/v1/shelves/{shelf_id}")
    assert (op["operationId"], op["tags"]) == ("LibraryService_GetShelf", ["LibraryService"])


def test_additional_bindings_are_paths_of_their_own(doc: Any) -> None:
    """GetShelf's additional binding is documented with a distinct operationId."""
    op = operation(doc, "get", "/v1/any/{_wildcard1}/shelves/{shelf_id}")
    assert op["operationId"] == "LibraryService_GetShelf_2"


def test_sub_template_variable_is_one_parameter_with_a_pattern(doc: Any) -> None:
    """`{name=shelves/*/books/*}` becomes `{name}` constrained by the template."""
    name = params(operation(doc, "get", "/v1/{name}"))["name"]
    assert name["schema"]["pattern"] == "^shelves/[^/]+/books/[^/]+$"


def test_nested_path_variable_is_named_by_its_field_path(doc: Any) -> None:
    """`{book.name}` is a path parameter named `book.name`."""
    assert params(operation(doc, "patch", "/v1/{book.name}"))["book.name"]["in"] == "path"


def test_custom_verb_stays_literal_in_the_path(doc: Any) -> None:
    """`:checkout` is part of the path."""
    assert "post" in doc["paths"]["/v1/{name}:checkout"]


def test_query_parameters_are_nested_repeated_and_enums(doc: Any) -> None:
    """Search's query: dotted nested names, arrays for repeated, enum names."""
    search = params(operation(doc, "get", "/v1/shelves/{shelf_id}/books:search"))
    assert "filter.author.displayName" in search
    assert search["tags"]["schema"]["type"] == "array"
    assert search["genre"]["schema"]["$ref"].endswith(LIB + "Genre")


def test_path_and_body_fields_are_not_query_parameters(doc: Any) -> None:
    """CreateBook's query has book_id only: shelf_id is in the path, book is the body."""
    create = params(operation(doc, "post", "/v1/shelves/{shelf_id}/books"))
    assert [p for p, v in create.items() if v["in"] == "query"] == ["bookId"]


def test_body_star_takes_no_query_and_omits_path_fields(doc: Any) -> None:
    """CheckoutBook (`body: "*"`): no query parameters; `name` is left to the path."""
    op = operation(doc, "post", "/v1/{name}:checkout")
    assert all(p["in"] != "query" for p in op["parameters"])
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"borrower", "idempotencyKey"}


def test_body_field_is_the_field_schema(doc: Any) -> None:
    """CreateBook's body is a Book."""
    body = operation(doc, "post", "/v1/shelves/{shelf_id}/books")["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith(LIB + "Book")


def test_response_body_documents_only_that_field(doc: Any) -> None:
    """GetShelfTheme's 200 is the string `theme`."""
    ok = operation(doc, "get", "/v1/shelves/{shelf_id}/theme")["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["type"] == "string"


def test_http_body_response_is_raw_bytes_of_any_type(doc: Any) -> None:
    """GetBookCover returns google.api.HttpBody: content `*/*`."""
    ok = operation(doc, "get", "/v1/{name}/cover")["responses"]["200"]
    assert list(ok["content"]) == ["*/*"]


def test_server_streaming_is_ndjson_of_the_message(doc: Any) -> None:
    """ExportBooks streams Books as application/x-ndjson, described as a stream."""
    ok = operation(doc, "get", "/v1/shelves/{shelf_id}/books:export")["responses"]["200"]
    assert ok["content"]["application/x-ndjson"]["schema"]["$ref"].endswith(LIB + "Book")
    assert "newline-delimited" in ok["description"]


def test_errors_are_google_rpc_status_with_typed_details(doc: Any) -> None:
    """Every operation's default response is google.rpc.Status, details carrying `@type`."""
    ops = [op for item in doc["paths"].values() for op in item.values()]
    refs = {
        op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"] for op in ops
    }
    assert refs == {"#/components/schemas/google.rpc.Status"}
    assert schema(doc, "google.protobuf.Any")["required"] == ["@type"]


def test_security_follows_the_access_level(paynow: Any) -> None:
    """PUBLIC: none; USER: bearerJwt; MERCHANT: apiKey; both: either."""
    assert operation(paynow, "post", "/v1/auth:login")["security"] == []
    assert operation(paynow, "get", "/v1/accounts")["security"] == [{"bearerJwt": []}]
    assert operation(paynow, "post", "/v1/payments")["security"] == [{"apiKey": []}]
    both = operation(paynow, "get", "/v1/payments/{id}")["security"]
    assert both == [{"bearerJwt": []}, {"apiKey": []}]


def test_security_schemes_are_bearer_jwt_and_api_key(paynow: Any) -> None:
    """Both schemes are HTTP bearer, told apart by their format."""
    schemes = paynow["components"]["securitySchemes"]
    assert schemes["bearerJwt"]["bearerFormat"] == "JWT"
    assert schemes["apiKey"]["bearerFormat"] == "sk_…"


def test_internal_methods_never_appear(doc: Any, paynow: Any) -> None:
    """Reindex (library) and VerifyApiKey/Transfer (PayNow) are INTERNAL: absent."""
    assert "/v1/reindex" not in doc["paths"]
    ids = {op["operationId"] for item in paynow["paths"].values() for op in item.values()}
    assert not ids & {"ApiKeyService_VerifyApiKey", "AccountService_Transfer"}


def test_protovalidate_string_rules_become_lengths_formats_patterns(paynow: Any) -> None:
    """min_len/max_len, email and pattern carry over."""
    props = schema(paynow, "paynow.auth.v1.RegisterRequest")["properties"]
    assert (props["password"]["minLength"], props["password"]["maxLength"]) == (15, 256)
    assert props["email"]["format"] == "email"
    get = params(operation(paynow, "get", "/v1/payments/{id}"))
    assert get["id"]["schema"]["pattern"] == "^pay_[0-9a-z]{26}$"


def test_protovalidate_int32_bound_becomes_minimum(paynow: Any) -> None:
    """`int32.gte = 0` on page_size is `minimum: 0`."""
    page_size = params(operation(paynow, "get", "/v1/accounts"))["pageSize"]
    assert page_size["schema"]["minimum"] == 0


def test_ignore_if_zero_still_accepts_the_empty_string(paynow: Any) -> None:
    """currency_code's pattern applies only when it is set."""
    currency = schema(paynow, "paynow.auth.v1.RegisterRequest")["properties"]["currencyCode"]
    assert currency["anyOf"][0] == {"const": ""}


def test_idempotency_key_header_is_documented_where_it_applies(paynow: Any) -> None:
    """Deposit has the header; GetAccount does not."""
    assert "Idempotency-Key" in params(operation(paynow, "post", "/v1/accounts/{id}:deposit"))
    assert "Idempotency-Key" not in params(operation(paynow, "get", "/v1/accounts/{id}"))


def test_same_methods_in_any_order_give_the_same_document(
    library: tuple[descriptor_pool.DescriptorPool, dict[str, MethodSpec]],
) -> None:
    """The edge's routes come in trie order; the document must not depend on it."""
    methods = list(library[1].values())
    assert openapi_json(build_openapi(methods)) == openapi_json(build_openapi(methods[::-1]))

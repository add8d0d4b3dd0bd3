"""The edge in generic mode: the test library proto, its backend and the edge as real
processes, exercised over real HTTP. The fixture waits on health, never on sleep."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.edge.library import (
    SERVICE,
    Process,
    library_edge,
)

pytestmark = pytest.mark.e2e
ORIGIN = "https://app.example"


class Edge:
    def __init__(self, port: int, process: Process) -> None:
        self.port = port
        self.process = process

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        raw = None if body is None else json.dumps(body).encode()
        status, _, data = self.request(method, path, raw, headers)
        return status, json.loads(data)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    out = tmp_path_factory.mktemp("library")
    with library_edge(out, edge_args=["--cors-origin", ORIGIN]) as (port, process):
        gateway = Edge(port, process)
        status, _, body = gateway.request("GET", "/healthz")
        assert status == 200, body
        yield gateway


def _error(body: Any) -> tuple[int, str]:
    info = body["details"][0]
    return body["code"], info.get("reason", "")


def test_health_reports_the_backend_serving(edge: Edge) -> None:
    """/healthz is 200 and names each backend service SERVING."""
    assert edge.json("GET", "/healthz") == (
        200,
        {"status": "SERVING", "backends": {SERVICE: "SERVING"}},
    )


def test_path_variable_reaches_the_request(edge: Edge) -> None:
    """GET /v1/shelves/{shelf_id} binds the id; int64 comes back as a string."""
    assert edge.json("GET", "/v1/shelves/s1") == (
        200,
        {"id": "s1", "theme": "theme of s1", "bookCount": "1099511627776"},
    )


def test_additional_binding_with_bare_star(edge: Edge) -> None:
    """The additional binding `/v1/any/*/shelves/{shelf_id}` reaches the same method."""
    assert edge.json("GET", "/v1/any/x/shelves/s2")[1]["id"] == "s2"


def test_single_segment_variable_is_fully_decoded(edge: Edge) -> None:
    """`%20` and `%2F` in a `{shelf_id}` are decoded."""
    assert edge.json("GET", "/v1/shelves/a%20b%2Fc")[1]["id"] == "a b/c"


def test_multi_segment_variable_keeps_encoded_slash(edge: Edge) -> None:
    """`{name=**}` decodes all but %2F."""
    assert edge.json("GET", "/v1/library/a/b%2Fc%20d")[1]["name"] == "a/b%2Fc d"


def test_sub_template_variable_binds_the_whole_resource_name(edge: Edge) -> None:
    """`{name=shelves/*/books/*}` binds `shelves/s1/books/b1`."""
    assert edge.json("GET", "/v1/shelves/s1/books/b1")[1]["name"] == "shelves/s1/books/b1"


def test_query_string_fills_every_kind_of_field(edge: Edge) -> None:
    """Nested, repeated, enum, int64, bool, Timestamp, Duration, wrapper, FieldMask, bytes."""
    query = (
        "filter.author.displayName=Ann&tags=a&tags=b&genre=2&min_pages=12&in_print=true"
        "&after=2024-01-02T03:04:05Z&max_age=3s&max_price=99&read_mask=title,author"
        "&rating=4.5&cursor=AQI&years=1999&years=2000&note=hi"
    )
    status, body = edge.json("GET", f"/v1/shelves/s1/books:search?{query}")
    assert status == 200
    assert body == {
        "shelfId": "s1",
        "filter": {"author": {"displayName": "Ann"}, "genre": "GENRE_UNSPECIFIED"},
        "tags": ["a", "b"],
        "genre": "GENRE_HISTORY",
        "minPages": "12",
        "inPrint": True,
        "after": "2024-01-02T03:04:05Z",
        "maxAge": "3s",
        "maxPrice": "99",
        "readMask": "title,author",
        "rating": 4.5,
        "cursor": "AQI=",
        "years": [1999, 2000],
        "note": "hi",
    }


def test_unknown_query_parameter_is_400_naming_it(edge: Edge) -> None:
    """An unknown parameter is refused, never dropped."""
    status, body = edge.json("GET", "/v1/shelves/s1/books:search?colour=red")
    assert (status, _error(body)) == (400, (3, "UNKNOWN_QUERY_PARAMETER"))
    assert "colour" in body["message"]


def test_wrong_type_in_query_is_400_naming_it(edge: Edge) -> None:
    """`min_pages=many` is a 400 that names min_pages."""
    status, body = edge.json("GET", "/v1/shelves/s1/books:search?min_pages=many")
    assert (status, _error(body)[1]) == (400, "INVALID_FIELD_VALUE")
    assert "min_pages" in body["message"]


def test_body_field_and_query_together(edge: Edge) -> None:
    """`body: "book"` takes the JSON as the book; `book_id` comes from the query."""
    status, body = edge.json(
        "POST", "/v1/shelves/s1/books?book_id=b9", {"title": "T", "page_count": "5"}
    )
    assert status == 200
    assert (body["name"], body["title"], body["pageCount"]) == ("shelves/s1/books/b9", "T", "5")


def test_nested_path_field_with_body_field(edge: Edge) -> None:
    """PATCH `{book.name=…}` sets book.name from the path inside the body's book."""
    status, body = edge.json("PATCH", "/v1/shelves/s1/books/b1?update_mask=title", {"title": "New"})
    assert status == 200
    assert body["book"]["name"] == "shelves/s1/books/b1"
    assert (body["book"]["title"], body["updateMask"]) == ("New", "title")


def test_body_star_with_custom_verb_and_path_winning(edge: Edge) -> None:
    """`POST …:checkout` with `body: "*"`: the path's name wins over the body's."""
    status, body = edge.json(
        "POST", "/v1/shelves/s1/books/b1:checkout", {"name": "other", "borrower": "ann"}
    )
    assert status == 200
    assert (body["name"], body["borrower"]) == ("shelves/s1/books/b1", "ann")


def test_idempotency_key_header_fills_the_field(edge: Edge) -> None:
    """`Idempotency-Key` sets idempotency_key on methods that have one."""
    status, body = edge.json(
        "POST", "/v1/shelves/s1/books/b1:checkout", {}, **{"Idempotency-Key": "key-1"}
    )
    assert (status, body["idempotencyKey"]) == (200, "key-1")


def test_response_body_sends_one_field(edge: Edge) -> None:
    """`response_body: "theme"` returns only the theme string."""
    assert edge.json("GET", "/v1/shelves/s1/theme") == (200, "theme of s1")


def test_http_body_response_is_raw(edge: Edge) -> None:
    """google.api.HttpBody comes back as its bytes and content type."""
    status, headers, body = edge.request("GET", "/v1/shelves/s1/books/b1/cover")
    assert (status, headers["content-type"]) == (200, "image/svg+xml")
    assert body == b"<svg>shelves/s1/books/b1</svg>"


def test_delete_returns_empty_object(edge: Edge) -> None:
    """DELETE with an Empty reply answers `{}`."""
    assert edge.json("DELETE", "/v1/shelves/s1/books/b1") == (200, {})


def test_unknown_path_is_404(edge: Edge) -> None:
    """No template matches: 404 ROUTE_NOT_FOUND in the Status shape."""
    status, body = edge.json("GET", "/v2/nothing")
    assert (status, _error(body)) == (404, (5, "ROUTE_NOT_FOUND"))


def test_wrong_method_is_405_with_allow(edge: Edge) -> None:
    """A known path with the wrong method is 405 listing the allowed ones."""
    status, headers, body = edge.request("PUT", "/v1/shelves/s1/books/b1")
    assert status == 405
    assert headers["Allow"] == "DELETE, GET, PATCH"
    assert _error(json.loads(body))[1] == "METHOD_NOT_ALLOWED"


def test_internal_method_is_never_routed(edge: Edge) -> None:
    """An ACCESS_INTERNAL method has no route at all."""
    assert edge.json("POST", "/v1/reindex", {})[0] == 404


def test_user_route_without_credentials_is_401_with_challenge(edge: Edge) -> None:
    """An ACCESS_USER route without Authorization is 401 with WWW-Authenticate: Bearer."""
    status, headers, body = edge.request("GET", "/v1/me/shelf")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert _error(json.loads(body))[1] == "CREDENTIALS_MISSING"


def test_malformed_json_is_400(edge: Edge) -> None:
    """A body that is not JSON is a 400 MALFORMED_JSON."""
    status, _, body = edge.request("POST", "/v1/shelves/s1/books", b"{nope")
    assert (status, _error(json.loads(body))[1]) == (400, "MALFORMED_JSON")


def test_unknown_body_field_is_400_naming_it(edge: Edge) -> None:
    """An unknown field in the body is refused and named."""
    status, body = edge.json("POST", "/v1/shelves/s1/books", {"colour": "red"})
    assert (status, _error(body)[1]) == (400, "UNKNOWN_FIELD")
    assert "colour" in body["message"]


def test_body_over_the_limit_is_413(edge: Edge) -> None:
    """A body over 1 MiB is refused with 413 BODY_TOO_LARGE."""
    status, _, body = edge.request("POST", "/v1/shelves/s1/books", b" " * (1024 * 1024 + 1))
    assert (status, _error(json.loads(body))[1]) == (413, "BODY_TOO_LARGE")


@pytest.mark.parametrize(
    ("code", "http_status"),
    [(3, 400), (5, 404), (6, 409), (7, 403), (9, 400), (10, 409), (14, 503), (16, 401), (13, 500)],
)
def test_backend_errors_map_with_details(edge: Edge, code: int, http_status: int) -> None:
    """Each backend code gets its HTTP status; details keep their `@type`."""
    status, body = edge.json("GET", f"/v1/errors/{code}")
    assert (status, body["code"]) == (http_status, code)
    assert [d["@type"] for d in body["details"]] == [
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.BadRequest",
    ]


def test_grpc_timeout_shortens_the_deadline_to_504(edge: Edge) -> None:
    """`Grpc-Timeout: 100m` on a 5 s call ends it as 504."""
    status, body = edge.json("GET", "/v1/sleep/5000", **{"Grpc-Timeout": "100m"})
    assert (status, body["code"]) == (504, 4)


def test_malformed_grpc_timeout_is_400(edge: Edge) -> None:
    """A Grpc-Timeout without a unit is a 400."""
    assert edge.json("GET", "/v1/sleep/1", **{"Grpc-Timeout": "100"})[0] == 400


def test_metadata_round_trip(edge: Edge) -> None:
    """Grpc-Metadata-* goes in (identity keys dropped), backend headers and trailers come out."""
    status, headers, body = edge.request(
        "GET",
        "/v1/whoami",
        headers={
            "Grpc-Metadata-Foo": "bar",
            "Grpc-Metadata-X-Paynow-User-Id": "usr_evil",
            "x-request-id": "req-42",
        },
    )
    received = json.loads(body)["metadata"]
    assert status == 200
    assert received["foo"] == "bar"
    assert received["x-request-id"] == "req-42"
    assert not any(key.startswith("x-paynow-") for key in received)
    assert headers["Grpc-Metadata-X-Backend"] == "library"
    assert headers["Grpc-Metadata-X-Trailer"] == "done"
    assert headers["x-request-id"] == "req-42"


def test_request_id_is_created_when_absent(edge: Edge) -> None:
    """Without x-request-id the edge makes one and returns it."""
    _, headers, _ = edge.request("GET", "/v1/shelves/s1")
    assert len(headers["x-request-id"]) == 24


def test_binary_metadata_is_base64_both_ways(edge: Edge) -> None:
    """A `-bin` header is base64 at HTTP and bytes in gRPC (the backend drops non-text)."""
    value = base64.b64encode(b"\x00\x01").decode()
    status, _, _ = edge.request("GET", "/v1/whoami", headers={"Grpc-Metadata-Trace-Bin": value})
    assert status == 200


def test_server_stream_is_ndjson(edge: Edge) -> None:
    """A server stream is one JSON message per line."""
    status, headers, body = edge.request("GET", "/v1/shelves/s1/books:export?count=3")
    lines = [json.loads(line) for line in body.splitlines()]
    assert (status, headers["content-type"]) == (200, "application/x-ndjson")
    assert [line["name"] for line in lines] == [f"shelves/s1/books/{i}" for i in range(3)]


def test_mid_stream_error_ends_with_one_error_line(edge: Edge) -> None:
    """A failure after two messages ends the stream with `{"error": Status}`."""
    status, _, body = edge.request("GET", "/v1/shelves/s1/books:export?count=5&fail_after=2")
    lines = [json.loads(line) for line in body.splitlines()]
    assert status == 200
    assert len(lines) == 3
    assert lines[-1]["error"]["code"] == 9
    assert lines[-1]["error"]["details"][0]["reason"] == "TEST_FAILURE"


def test_cors_preflight_grants_the_configured_origin(edge: Edge) -> None:
    """OPTIONS with Origin and Access-Control-Request-Method gets the route's methods."""
    status, headers, _ = edge.request(
        "OPTIONS",
        "/v1/shelves/s1",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in headers["access-control-allow-methods"]


def test_cors_ignores_other_origins(edge: Edge) -> None:
    """A response to an unlisted origin carries no Access-Control-Allow-Origin."""
    _, headers, _ = edge.request("GET", "/v1/shelves/s1", headers={"Origin": "https://evil"})
    assert "access-control-allow-origin" not in headers


def test_one_log_line_per_request_with_the_route_template(edge: Edge) -> None:
    """Each request logs its template (not the raw path), status and request id."""
    edge.request("GET", "/v1/shelves/secret-id", headers={"x-request-id": "log-check-1"})
    line = edge.process.wait_for('"log-check-1"')
    entry = json.loads(line)
    assert entry["route"] == "GET /v1/shelves/{shelf_id}"
    assert entry["status"] == 200
    assert "secret-id" not in line
    assert isinstance(entry["duration_ms"], float)

"""The edge's /openapi.json and /docs over real HTTP, with the test library's backend and
the edge as real processes on 127.0.0.1; the fixture waits on health, never on sleep."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from openapi_spec_validator import validate

from tests.edge.library import (
    library_edge,
)

pytestmark = pytest.mark.e2e


def get(port: int, path: str) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.headers.get("content-type", ""), response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def edge_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with library_edge(tmp_path_factory.mktemp("library")) as (port, process):
        assert get(port, "/healthz")[0] == 200, process.output()
        yield port


def test_openapi_json_is_a_valid_document_of_the_routed_methods(edge_port: int) -> None:
    """GET /openapi.json is valid OpenAPI 3.1 and lists the library's routes."""
    status, content_type, body = get(edge_port, "/openapi.json")
    assert (status, content_type) == (200, "application/json")
    document = json.loads(body)
    validate(document)
    assert "/v1/shelves/{shelf_id}" in document["paths"]


def test_docs_is_an_html_page_loading_the_document(edge_port: int) -> None:
    """GET /docs is Swagger UI's page, pointed at /openapi.json."""
    status, content_type, body = get(edge_port, "/docs")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert b'url: "/openapi.json"' in body


def test_docs_asset_is_served_from_the_package(edge_port: int) -> None:
    """GET /docs/swagger-ui.css is Swagger UI's stylesheet."""
    status, content_type, body = get(edge_port, "/docs/swagger-ui.css")
    assert (status, content_type) == (200, "text/css; charset=utf-8")
    assert b".swagger-ui" in body


def test_unknown_docs_asset_is_a_404_status(edge_port: int) -> None:
    """A path under /docs that is not an asset is the edge's usual 404."""
    status, _, body = get(edge_port, "/docs/index.j2")
    assert status == 404
    assert json.loads(body)["details"][0]["reason"] == "ROUTE_NOT_FOUND"

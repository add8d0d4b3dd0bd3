"""The /docs site: the document, an offline Swagger UI page, and only its own assets."""

from __future__ import annotations

import re

from services.edge.docs_page import DocsSite


def site() -> DocsSite:
    return DocsSite(b'{"openapi":"3.1.0"}', "Library <API>")


def test_openapi_path_serves_the_document_as_json() -> None:
    """/openapi.json is the built bytes, as application/json."""
    assert site().page("/openapi.json") == (b'{"openapi":"3.1.0"}', "application/json")


def test_docs_page_loads_the_document_and_only_local_assets() -> None:
    """The page points at /openapi.json and references no other host."""
    page = site().page("/docs")
    assert page is not None
    html = page[0].decode()
    assert 'url: "/openapi.json"' in html
    assert re.findall(r"(?:src|href)=\"([^\"]+)\"", html) == [
        "/docs/swagger-ui.css", "/docs/favicon-32x32.png", "/docs/swagger-ui-bundle.js",
    ]  # fmt: skip
    assert "//" not in "".join(re.findall(r"(?:src|href|url)[=:] ?\"([^\"]+)\"", html))


def test_docs_page_disables_the_online_validator() -> None:
    """validatorUrl is null, so Swagger UI never posts the document elsewhere."""
    page = site().page("/docs/")
    assert page is not None
    assert b"validatorUrl: null" in page[0]


def test_docs_page_escapes_the_title() -> None:
    """A title with markup is shown as text."""
    page = site().page("/docs")
    assert page is not None
    assert b"<title>Library &lt;API></title>" in page[0]


def test_assets_come_from_the_swagger_ui_package() -> None:
    """/docs/swagger-ui-bundle.js is Swagger UI 5's bundle, as JavaScript."""
    page = site().page("/docs/swagger-ui-bundle.js")
    assert page is not None
    body, content_type = page
    assert content_type.startswith("text/javascript")
    assert b"SwaggerUIBundle" in body


def test_other_files_of_the_package_are_not_served() -> None:
    """Only the page's assets: no source maps, templates or path tricks."""
    docs = site()
    for path in ("/docs/index.j2", "/docs/swagger-ui.js.map", "/docs/../__init__.py", "/docsx"):
        assert docs.page(path) is None

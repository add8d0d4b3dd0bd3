"""`/openapi.json` and the API reference at `/docs`, served with no network beyond the edge.

The document is built once, when the gateway is, and kept as bytes. `/docs` is Swagger UI
from the `swagger_ui_bundle` package's static files (swagger-ui-dist 5, which renders
OpenAPI 3.1), pointed at `/openapi.json`. Assets are read on first request and cached; only
the few files the page loads are served, so no other path reaches the package directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from .descriptors import MethodSpec
from .openapi import build_openapi, openapi_json

__all__ = ["DOCS_PATH", "OPENAPI_PATH", "DocsSite"]

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
_JSON = "application/json"
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
# validatorUrl null: Swagger UI would otherwise send the document to an online validator.
_INDEX = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""


class DocsSite:
    """Answers GET for `/openapi.json`, `/docs` (and `/docs/`) and the page's assets."""

    def __init__(self, document: bytes, title: str, assets: Path | None = None) -> None:
        self._assets = Path(str(swagger_ui_path)) if assets is None else assets
        index = _INDEX.format(title=title.replace("&", "&amp;").replace("<", "&lt;")).encode()
        self._pages: dict[str, tuple[bytes, str]] = {
            OPENAPI_PATH: (document, _JSON),
            DOCS_PATH: (index, "text/html; charset=utf-8"),
            DOCS_PATH + "/": (index, "text/html; charset=utf-8"),
        }

    @classmethod
    def from_methods(cls, methods: Iterable[MethodSpec]) -> DocsSite:
        """The site for the OpenAPI document of `methods` (the routed ones)."""
        document = build_openapi(methods)
        return cls(openapi_json(document), str(document["info"]["title"]))

    def page(self, path: str) -> tuple[bytes, str] | None:
        """The body and content type for `path`, or None when it is not one of ours.

        Raises OSError if the asset package is damaged (a 500, logged by the gateway).
        """
        found = self._pages.get(path)
        if found is not None:
            return found
        name = path.removeprefix(DOCS_PATH + "/")
        content_type = _ASSETS.get(name)
        if name == path or content_type is None:
            return None
        asset = ((self._assets / name).read_bytes(), content_type)
        self._pages[path] = asset
        return asset

"""The golden HTTP format: tests/contracts/rest/<service>/<Rpc>.json, its loader, and the
routes the edge serves (every binding of an annotated, non-INTERNAL RPC).

A step is one HTTP request, `method` and `path` (plus `query`, `auth`, `headers`, `body`),
then what must come back: `status`, and the body as `response` (with matchers), `error`
(the google.rpc.Status body's code and details) or `lines` (NDJSON messages of a stream),
`responseHeaders`, and `capture`. See tests/contracts/rest/README.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.api import annotations_pb2 as http_annotations

from paynow.api.v1 import annotations_pb2 as access_annotations

from ._format import ROOT, FormatError, Schema, provider_of, short_name

__all__ = [
    "REST_DIR",
    "Golden",
    "HttpExchange",
    "HttpStep",
    "Route",
    "golden_path",
    "load_golden",
    "routes",
]

REST_DIR = ROOT / "tests" / "contracts" / "rest"

_STEP_KEYS = {
    "method",
    "path",
    "query",
    "auth",
    "headers",
    "body",
    "status",
    "response",
    "error",
    "lines",
    "maxLines",
    "responseHeaders",
    "capture",
}
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
_TIMEOUT_S = 15.0
_JWT = re.compile(r"[\w-]+\.[\w-]+\.[\w-]+")
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass(frozen=True)
class Route:
    """One HTTP binding of an RPC the edge serves: `GET /v1/accounts/{id}`."""

    rpc: str
    verb: str
    template: str
    response_body: str

    def matches(self, method: str, path: str) -> bool:
        """Whether a step's method and path (templates unrendered) call this binding."""
        concrete = re.sub(r"\{\{[^}]*\}\}", "x", path.partition("?")[0])
        # A variable is one segment; `:` ends it too, so `{id}:watch` is not `{id}`.
        pattern = re.sub(r"\\\{[^}]*\\\}", lambda _: "[^/:]+", re.escape(self.template))
        return method == self.verb and re.fullmatch(pattern, concrete) is not None


def _bindings(rule: Any) -> Iterator[Any]:
    yield rule
    yield from rule.additional_bindings


def routes(schema: Schema | None = None) -> list[Route]:
    """Every binding of every RPC with a `google.api.http` rule and a non-INTERNAL access:
    what the edge routes."""
    schema = schema or Schema.load()
    found = []
    for rpc in schema.rpcs():
        options = schema.method(rpc).GetOptions()
        levels = options.Extensions[access_annotations.access].allow
        if not options.HasExtension(http_annotations.http) or not levels:
            continue
        if access_annotations.ACCESS_INTERNAL in levels:
            continue
        for rule in _bindings(options.Extensions[http_annotations.http]):
            verb = rule.WhichOneof("pattern")
            template = getattr(rule, verb) if verb != "custom" else rule.custom.path
            verb = rule.custom.kind if verb == "custom" else verb
            found.append(Route(rpc, verb.upper(), template, rule.response_body))
    return found


def golden_path(rpc: str) -> Path:
    """Where an RPC's goldens live: rest/<service>/<Rpc>.json."""
    return REST_DIR / provider_of(rpc) / f"{short_name(rpc)}.json"


@dataclass(frozen=True)
class HttpStep:
    """One HTTP request through the edge, with what must come back."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    auth: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    status: int | None = None
    response: Any = None
    error: Mapping[str, Any] | None = None
    lines: list[Any] | None = None
    max_lines: int | None = None
    response_headers: Mapping[str, Any] = field(default_factory=dict)
    capture: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpExchange:
    """Set-up requests (`given`), then the request the exchange is about."""

    rpc: str
    name: str
    given: tuple[HttpStep, ...]
    call: HttpStep
    source: str


@dataclass(frozen=True)
class Golden:
    """tests/contracts/rest/<service>/<Rpc>.json: the HTTP exchanges of one RPC."""

    rpc: str
    exchanges: tuple[HttpExchange, ...]
    path: Path


def _step(raw: Any, where: str, *, call: bool) -> HttpStep:
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: a step is an object")
    unknown = set(raw) - _STEP_KEYS - ({"name", "description", "given"} if call else set())
    if unknown:
        raise FormatError(f"{where}: unknown keys {sorted(unknown)}")
    if raw.get("method") not in _METHODS or not str(raw.get("path", "")).startswith("/"):
        raise FormatError(f"{where}: `method` (GET, POST, …) and `path` (/…) are required")
    if call and not isinstance(raw.get("status"), int):
        raise FormatError(f"{where}: the exchange's request states the `status` it expects")
    if len([key for key in ("response", "error", "lines") if key in raw]) > 1:
        raise FormatError(f"{where}: at most one of response, error, lines")
    auth = raw.get("auth", "")
    if auth and not re.fullmatch(r"(user|merchant):[A-Za-z0-9_]+", auth):
        raise FormatError(f"{where}: `auth` is user:<capture of a JWT> or merchant:<of a key>")
    return HttpStep(
        method=raw["method"],
        path=raw["path"],
        query=raw.get("query", {}),
        auth=auth,
        headers=raw.get("headers", {}),
        body=raw.get("body"),
        status=raw.get("status"),
        response=raw.get("response"),
        error=raw.get("error"),
        lines=raw.get("lines"),
        max_lines=raw.get("maxLines"),
        response_headers=raw.get("responseHeaders", {}),
        capture=raw.get("capture", {}),
    )


def load_golden(path: Path, schema: Schema | None = None) -> Golden:
    """Read one golden file; FormatError names the file and the place that is wrong."""
    schema = schema or Schema.load()
    raw = json.loads(path.read_text(encoding="utf-8"))
    where = str(path.resolve().relative_to(REST_DIR))
    rpc = raw.get("rpc")
    if not rpc:
        raise FormatError(f"{where}: `rpc` is required")
    schema.method(rpc)
    exchanges = []
    for i, item in enumerate(raw.get("exchanges", [])):
        if not isinstance(item, dict) or not item.get("name"):
            raise FormatError(f"{where} exchanges[{i}]: an exchange is an object with a `name`")
        label = f"{where} exchanges[{i}] ({item['name']})"
        given = tuple(
            _step(step, f"{label} given[{j}]", call=False)
            for j, step in enumerate(item.get("given", []))
        )
        call = _step(item, label, call=True)
        exchanges.append(HttpExchange(rpc, item["name"], given, call, where))
    if not exchanges:
        raise FormatError(f"{where}: no exchanges")
    return Golden(rpc, tuple(exchanges), path)

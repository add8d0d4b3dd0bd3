"""The edge's OpenAPI 3.1 document, built from the same MethodSpecs and templates it routes.

    template `/v1/{name=shelves/*}:verb`  →  path `/v1/{name}:verb`, parameter `name` with
                                             pattern `^shelves/[^/]+$`
    body "" or a field                    →  every other settable field as a query parameter
    access PUBLIC / USER / MERCHANT       →  no security / `bearerJwt` / `apiKey`
    INTERNAL                              →  left out, as the edge never routes it

Every operation's `default` response is the google.rpc.Status body the edge answers errors
with. Messages and enums become components named by their full proto names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.rpc import status_pb2

from .auth import INTERNAL, MERCHANT, PUBLIC, USER
from .descriptors import Binding, MethodSpec, SourceInfo
from .marshal import HTTP_BODY
from .openapi_schemas import Schema, SchemaBuilder, is_map, scalar_form
from .query import resolve
from .routes import IDEMPOTENCY_FIELD
from .routing import Template, parse_template

__all__ = ["build_openapi", "openapi_json"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_STATUS = "google.rpc.Status"
_SECURITY: dict[int, tuple[str, Schema]] = {
    USER: (
        "bearerJwt",
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A signed-in person's access token (`POST /v1/auth:login`).",
        },
    ),
    MERCHANT: (
        "apiKey",
        {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sk_…",
            "description": "A merchant integration's API key, `sk_…`.",
        },
    ),
}
_STATUS_DESCRIPTION = (
    "An error, as google.rpc.Status: the gRPC code number, a developer-facing message, and "
    "details such as google.rpc.ErrorInfo, each with its `@type`. The HTTP status follows "
    "grpc-gateway's table (NOT_FOUND 404, INVALID_ARGUMENT and FAILED_PRECONDITION 400, …)."
)
_STREAM_NOTE = (
    "A stream: newline-delimited JSON, one message (this schema) per line, sent as it "
    'arrives. An error after the first line ends the stream with one `{"error": <Status>}` '
    "line."
)


def _path(template: Template) -> tuple[str, dict[str, str]]:
    """The OpenAPI path and each path parameter's pattern (multi-segment captures only)."""
    starts = {v.start: v for v in template.variables}
    parts: list[str] = []
    patterns: dict[str, str] = {}
    i, anonymous = 0, 0
    while i < len(template.segments):
        variable = starts.get(i)
        if variable is not None:
            end = len(template.segments) if variable.end is None else variable.end
            inner = template.segments[i:end]
            parts.append("{" + variable.field_path + "}")
            if inner != ("*",):
                body = "/".join({"*": "[^/]+", "**": ".+"}.get(s, s) for s in inner)
                patterns[variable.field_path] = f"^{body}$"
            i = end
            continue
        segment = template.segments[i]
        if segment in ("*", "**"):
            anonymous += 1
            name = f"_wildcard{anonymous}"
            parts.append("{" + name + "}")
            patterns[name] = "^[^/]+$" if segment == "*" else "^.+$"
        else:
            parts.append(segment)
        i += 1
    verb = f":{template.verb}" if template.verb else ""
    return "/" + "/".join(parts) + verb, patterns


def _summary(comment: str) -> str:
    first = comment.split("\n\n", 1)[0].replace("\n", " ")
    return first.split(". ", 1)[0].rstrip(".")


class _Document:
    def __init__(self, source: SourceInfo) -> None:
        self.source = source
        self.schemas = SchemaBuilder(source)
        self.paths: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, str] = {}
        self.schemes: set[int] = set()

    def add(self, spec: MethodSpec) -> None:
        short = spec.service.rsplit(".", 1)[-1]
        self.tags[short] = self.source.comment(spec.service)
        for n, binding in enumerate(spec.bindings, start=1):
            kind = binding.http_method.lower()
            if kind not in _METHODS:
                continue
            path, operation = self._operation(spec, binding, parse_template(binding.template))
            operation["operationId"] = f"{short}_{spec.name}" + (f"_{n}" if n > 1 else "")
            operation["tags"] = [short]
            # Two bindings with one OpenAPI path (`/v1/{name=a/*}`, `/v1/{name=b/*}`): the
            # first is documented, since a path item holds one operation per method.
            self.paths.setdefault(path, {}).setdefault(kind, operation)

    def _operation(
        self, spec: MethodSpec, binding: Binding, template: Template
    ) -> tuple[str, dict[str, Any]]:
        path, patterns = _path(template)
        comment = self.source.comment(f"{spec.service}.{spec.name}")
        operation: dict[str, Any] = {"summary": _summary(comment) or spec.name}
        if comment:
            operation["description"] = comment
        bound = {v.field_path: resolve(spec.input, v.field_path) for v in template.variables}
        parameters = [
            self._path_parameter(name, fields, patterns) for name, fields in bound.items()
        ]
        parameters += [
            {"name": name, "in": "path", "required": True, "schema": {"pattern": pattern}}
            for name, pattern in patterns.items()
            if name.startswith("_wildcard")
        ]
        excluded = {".".join(f.name for f in fields) for fields in bound.values()}
        if binding.body and binding.body != "*":
            excluded.add(binding.body)
        if binding.body != "*":
            parameters += self._query(spec.input, excluded)
        if IDEMPOTENCY_FIELD in spec.input.fields_by_name:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": f"Fills `{IDEMPOTENCY_FIELD}` when the body leaves it empty.",
                    "schema": {"type": "string"},
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if binding.body:
            operation["requestBody"] = self._body(spec.input, binding.body, bound)
        operation["responses"] = {
            "200": self._response(spec, binding.response_body),
            "default": {
                "description": "An error.",
                "content": {
                    "application/json": {"schema": self.schemas.ref(status_pb2.Status.DESCRIPTOR)}
                },
            },
        }
        operation["security"] = self._security(spec.access)
        return path, operation

    def _path_parameter(
        self, name: str, fields: list[FieldDescriptor], patterns: dict[str, str]
    ) -> dict[str, Any]:
        schema = self.schemas.value_schema(fields[-1])
        if name in patterns:
            schema = {"type": "string", "pattern": patterns[name]}
        parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
        description = self.source.comment(fields[-1].full_name)
        if description:
            parameter["description"] = description
        parameter["schema"] = schema
        return parameter

    def _query(
        self,
        message: Descriptor,
        excluded: set[str],
        *,
        prefix: tuple[str, str] = ("", ""),
        seen: tuple[str, ...] = (),
        parents_required: bool = True,
    ) -> list[dict[str, Any]]:
        """Query parameters (JSON names, dotted) of every field the query can set."""
        json_prefix, proto_prefix = prefix
        seen = seen or (message.full_name,)
        found: list[dict[str, Any]] = []
        for field in message.fields:
            proto_path = proto_prefix + field.name
            if proto_path in excluded or is_map(field):
                continue
            name = json_prefix + field.json_name
            required = parents_required and self.schemas.is_required(field)
            nested = field.message_type
            if nested is not None and scalar_form(nested) is None:
                if field.is_repeated or nested.full_name in seen:
                    continue  # not settable from a string; a cycle would never end
                found += self._query(
                    nested,
                    excluded,
                    prefix=(name + ".", proto_path + "."),
                    seen=(*seen, nested.full_name),
                    parents_required=required,
                )
                continue
            parameter: dict[str, Any] = {"name": name, "in": "query"}
            if required:
                parameter["required"] = True
            schema = self.schemas.field_schema(field)
            schema.pop("readOnly", None)
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameter["schema"] = schema
            if field.is_repeated:
                parameter["explode"] = True  # `x=1&x=2`
            found.append(parameter)
        return found

    def _body(
        self, message: Descriptor, body: str, bound: dict[str, list[FieldDescriptor]]
    ) -> dict[str, Any]:
        field = None if body == "*" else message.fields_by_name[body]
        target = message if field is None else field.message_type
        if target is not None and target.full_name == HTTP_BODY:
            return {"content": {"*/*": {}}, "description": "The raw bytes, with their type."}
        if field is not None:
            schema = self.schemas.value_schema(field)
        else:
            # Fields bound by the path are not part of the body's documented shape.
            top = frozenset(fields[0].name for fields in bound.values() if len(fields) == 1)
            schema = self.schemas.object_schema(message, top) if top else self.schemas.ref(message)
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    def _response(self, spec: MethodSpec, response_body: str) -> dict[str, Any]:
        output = spec.output
        schema: Schema
        if response_body:
            field = output.fields_by_name[response_body]
            nested = None if field.is_repeated else field.message_type
            raw = nested is not None and nested.full_name == HTTP_BODY
            schema = {} if raw else self.schemas.value_schema(field)
        else:
            raw = output.full_name == HTTP_BODY
            schema = {} if raw else self.schemas.ref(output)
        description = self.source.comment(output.full_name) or "The response."
        if raw:
            return {"description": "The raw bytes, with their type.", "content": {"*/*": {}}}
        if spec.server_streaming:
            return {
                "description": _STREAM_NOTE,
                "content": {"application/x-ndjson": {"schema": schema}},
            }
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def _security(self, access: frozenset[int]) -> list[dict[str, list[str]]]:
        if PUBLIC in access:
            return []
        levels = sorted(level for level in access if level in _SECURITY)
        self.schemes.update(levels)
        return [{_SECURITY[level][0]: []} for level in levels]


def build_openapi(methods: Iterable[MethodSpec], *, title: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `methods`' HTTP bindings, INTERNAL methods left out.

    The same methods in any order give the same document (paths, tags and components are
    sorted), so the file `make openapi` writes and the edge's `/openapi.json` agree.
    """
    specs = sorted((spec for spec in methods if INTERNAL not in spec.access), key=lambda s: s.path)
    document = _Document(specs[0].source if specs else SourceInfo())
    for spec in specs:
        document.add(spec)
    status = document.schemas.components.get(_STATUS)
    if status is not None:
        status["description"] = _STATUS_DESCRIPTION
    packages = sorted({spec.service.split(".", 1)[0] for spec in specs})
    components: dict[str, Any] = {"schemas": dict(sorted(document.schemas.components.items()))}
    if document.schemes:
        components["securitySchemes"] = dict(_SECURITY[level] for level in sorted(document.schemes))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title or f"{', '.join(packages) or 'gRPC'} REST API",
            "version": "v1",
            "description": "REST/JSON transcoding of gRPC services by the edge, from their "
            "`google.api.http` annotations. Errors are google.rpc.Status bodies.",
        },
        "tags": [
            {"name": name, "description": text} if text else {"name": name}
            for name, text in sorted(document.tags.items())
        ],
        "paths": dict(sorted(document.paths.items())),
        "components": components,
    }


def openapi_json(document: dict[str, Any]) -> bytes:
    """The document as stable, readable JSON (two-space indents, UTF-8, final newline)."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()

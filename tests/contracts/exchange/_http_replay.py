"""Replaying golden HTTP exchanges against a running edge, over plain HTTP/1.1.

The main request's body is walked with its RPC's response type from the descriptor set, as
the gRPC examples are, so a renamed, removed or retyped field is named; an error body must
be a google.rpc.Status whose ErrorInfo and BadRequest details match; a stream is read as
NDJSON, one message per line.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import grpc
from google.api import annotations_pb2 as http_annotations
from google.protobuf import descriptor

from ._format import FormatError, Schema, Variables, render
from ._http_format import HttpExchange, HttpStep
from ._match import check
from ._replay import ExchangeFailed, _lookup

__all__ = ["replay_http"]

_TIMEOUT_S = 15.0
_JWT = re.compile(r"[\w-]+\.[\w-]+\.[\w-]+")
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    lines: list[bytes] | None  # the NDJSON lines of a stream; None for one JSON body


def _send(
    address: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    max_lines: int | None,
) -> _Reply:
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=_TIMEOUT_S)
    try:
        connection.request(method, target, body=body, headers=dict(headers))
        response = connection.getresponse()
        names = {name.lower(): value for name, value in response.getheaders()}
        if not names.get("content-type", "").startswith("application/x-ndjson"):
            return _Reply(response.status, names, response.read(), None)
        lines: list[bytes] = []
        # Read line by line: a stream still open (a payment that waits) is left once
        # `maxLines` messages came, rather than waiting out the edge's deadline.
        while max_lines is None or len(lines) < max_lines:
            line = response.readline()
            if not line:
                break
            if line.strip():
                lines.append(line)
        return _Reply(response.status, names, b"".join(lines), lines)
    finally:
        connection.close()


def _request(step: HttpStep, variables: Variables) -> tuple[str, dict[str, str], bytes | None]:
    target = render(step.path, variables)
    if step.query:
        target += ("&" if "?" in target else "?") + urlencode(
            render(dict(step.query), variables), doseq=True
        )
    headers = {name: str(value) for name, value in render(dict(step.headers), variables).items()}
    if step.auth:
        kind, _, name = step.auth.partition(":")
        credential = str(variables[name])
        looks_right = (
            credential.startswith("sk_") if kind == "merchant" else _JWT.fullmatch(credential)
        )
        if not looks_right:
            raise FormatError(
                f"auth {step.auth}: {name} is not a {'API key' if kind == 'merchant' else 'JWT'}"
            )
        headers["Authorization"] = f"Bearer {credential}"
    body = None
    if step.body is not None:
        body = json.dumps(render(step.body, variables)).encode()
        headers.setdefault("Content-Type", "application/json")
    return target, headers, body


def _status_problems(expected: Mapping[str, Any], document: Any) -> list[str]:
    """How a google.rpc.Status body differs from an `error` expectation."""
    if not isinstance(document, dict) or not isinstance(document.get("details"), list):
        return [f"expected a google.rpc.Status body, got {document!r}"]
    infos = [d for d in document["details"] if d.get("@type") == _ERROR_INFO]
    info = infos[0] if infos else {}
    fields = [
        violation.get("field")
        for detail in document["details"]
        if detail.get("@type") == _BAD_REQUEST
        for violation in detail.get("fieldViolations", [])
    ]
    problems = []
    code = _CODE_NUMBERS.get(expected["code"])
    if code is None:
        raise FormatError(f"error code {expected['code']!r} is not a gRPC code name")
    got = f"code {document.get('code')} {info.get('reason', '(no ErrorInfo)')}"
    if document.get("code") != code or info.get("reason") != expected.get(
        "reason", info.get("reason")
    ):
        want = f"code {code} ({expected['code']}) {expected.get('reason', '')}".strip()
        problems.append(f"expected error {want}, got {got}: {document.get('message')!r}")
    if not isinstance(document.get("message"), str):
        problems.append(f"error {got}: `message` is not a string")
    if "domain" in expected and info.get("domain") != expected["domain"]:
        problems.append(
            f"error {got}: expected domain {expected['domain']!r}, got {info.get('domain')!r}"
        )
    for key, value in expected.get("metadata", {}).items():
        actual = info.get("metadata", {}).get(key)
        if actual != value:
            problems.append(f"error {got}: metadata {key} expected {value!r}, got {actual!r}")
    for violation in expected.get("violations", []):
        if violation["field"] not in fields:
            problems.append(
                f"error {got}: no field violation on {violation['field']} (got {fields})"
            )
    return problems


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _check_reply(
    step: HttpStep, reply: _Reply, message_type: descriptor.Descriptor | None, variables: Variables
) -> tuple[list[str], Any]:
    problems: list[str] = []
    expected_status = step.status if step.status is not None else 200
    if reply.lines is None:
        document = _decode(reply.body)
    else:
        document = [_decode(line) for line in reply.lines]
    if reply.status != expected_status:
        shown = reply.body.decode("utf-8", "replace")[:500]
        return [f"expected status {expected_status}, got {reply.status}: {shown}"], document
    content_type = reply.headers.get("content-type", "")
    wanted_type = "application/x-ndjson" if step.lines is not None else "application/json"
    if reply.body and not content_type.startswith(wanted_type):
        problems.append(f"expected content-type {wanted_type}, got {content_type!r}")
    if step.lines is None and reply.body and document is None:
        problems.append(f"the body is not JSON: {reply.body[:200]!r}")
    headers = {name.lower(): want for name, want in step.response_headers.items()}
    problems += check(render(headers, variables), reply.headers, None, "response header")
    if step.error is not None:
        problems += _status_problems(render(dict(step.error), variables), document)
    elif step.lines is not None and not isinstance(document, list):
        problems.append("expected an NDJSON stream, got one JSON body")
    elif step.lines is not None:
        expected_lines = render(step.lines, variables)
        if len(document) != len(expected_lines):
            problems.append(f"expected {len(expected_lines)} NDJSON lines, got {len(document)}")
        for i, (want, got) in enumerate(zip(expected_lines, document, strict=False)):
            problems += check(want, got, message_type, f"line {i + 1} field")
    elif step.response is not None:
        problems += check(render(step.response, variables), document, message_type)
    if isinstance(document, list):
        document = document[-1] if document else {}
    return problems, document


def _response_type(schema: Schema, rpc: str) -> descriptor.Descriptor | None:
    method = schema.method(rpc)
    rule = method.GetOptions().Extensions[http_annotations.http]
    if rule.response_body:
        # A scalar `response_body` has no message type: its value is compared as given.
        return method.output_type.fields_by_name[rule.response_body].message_type
    return method.output_type


async def _run_step(
    step: HttpStep,
    address: str,
    variables: Variables,
    message_type: descriptor.Descriptor | None,
    label: str,
) -> None:
    target, headers, body = _request(step, variables)
    reply = await asyncio.to_thread(
        _send, address, step.method, target, headers, body, max_lines=step.max_lines
    )
    problems, document = _check_reply(step, reply, message_type, variables)
    if problems:
        raise ExchangeFailed(f"{label} ({step.method} {target}): " + "; ".join(problems))
    for name, path in step.capture.items():
        value = _lookup(document, path)
        if value in (None, ""):
            raise ExchangeFailed(f"{label}: cannot capture {name}: response field {path} missing")
        variables[name] = value


async def replay_http(
    exchange: HttpExchange, address: str, schema: Schema | None = None, *, label: str
) -> Variables:
    """Send the set-up requests, then the exchange's, to the edge at `address` (host:port);
    every answer must match, or ExchangeFailed names the step and what differs."""
    schema = schema or Schema.load()
    variables = Variables()
    for i, step in enumerate(exchange.given, start=1):
        where = f"{label}, set-up step {i}"
        await _run_step(step, address, variables, None, where)
    response_type = _response_type(schema, exchange.rpc)
    await _run_step(exchange.call, address, variables, response_type, label)
    return variables

"""The edge's request decoding path, one fuzz input at a time; importable without atheris.

An input is a request in a small text framing that libFuzzer mutates well and a person can
write by hand (the seed corpus in `corpus/`):

    METHOD SP TARGET LF        TARGET is path[?query], as sent (still percent-encoded)
    name: value LF             zero or more headers
    LF
    body                       every remaining byte

`check()` runs what the gateway runs before it calls a backend, on routes compiled from the
test library proto and PayNow's own descriptor set: the router's match (and 404/405 when
nothing matches), the 413 check, `Grpc-Metadata-*` and `Grpc-Timeout`, then the gateway's
own `_message` (body decode, query, path variables, Idempotency-Key) and the serialization
the gRPC call would do. An EdgeError with a 4xx status is a clean answer; anything else
raised is a bug the fuzzer reports (a request that would get a 500).
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any

import grpc

from services.edge.auth import INTERNAL, PUBLIC
from services.edge.descriptors import load_descriptor_set
from services.edge.errors import EdgeError
from services.edge.gateway import Gateway
from services.edge.marshal import DEFAULT_JSON_DEPTH
from services.edge.metadata import (
    FORWARDED_FOR_HEADER,
    METADATA_PREFIX,
    forwarded_metadata,
    parse_grpc_timeout,
    request_id,
)
from services.edge.routes import Route, compile_route
from services.edge.routing import Router
from services.edge.server import Request
from tests.edge.library import ROOT, compile_library

__all__ = ["Decoding", "Outcome", "build_decoding", "split"]

PAYNOW_SET = ROOT / "generated" / "paynow" / "descriptor_set.binpb"
# The body limit for the 413 check: the server's default is 1 MiB; smaller, so the fuzzer
# reaches it.
BODY_LIMIT = 64 * 1024


def split(data: bytes) -> tuple[str, bytes, list[tuple[bytes, bytes]], bytes]:
    """(method, target, headers, body) of one input in the framing above; never raises."""
    head, _, body = data.partition(b"\n\n")
    first, *lines = head.split(b"\n")
    method, _, target = first.rstrip(b"\r").partition(b" ")
    headers = []
    for line in lines:
        name, colon, value = line.rstrip(b"\r").partition(b":")
        if colon:
            headers.append((name.strip(), value.strip()))
    return method.decode("latin-1"), target, headers, body


def request(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Request:
    """The Request server.HttpConnection would hand the gateway (see its on_header and
    on_message_complete), minus the client address it adds."""
    parsed = Request()
    parsed.method = method
    for raw_name, value in headers:
        name = raw_name.lower()
        if name.startswith(METADATA_PREFIX):
            if name != FORWARDED_FOR_HEADER:
                parsed.grpc_metadata.append((name, value))
        else:
            parsed.headers[name] = value
    path, _, query = target.partition(b"?")
    parsed.path = path.decode("latin-1")
    parsed.query = query.decode("latin-1")
    length = parsed.headers.get(b"content-length")
    parsed.too_large = len(body) > BODY_LIMIT or (
        length is not None and length.isdigit() and int(length) > BODY_LIMIT
    )
    parsed.body = b"" if parsed.too_large else body
    return parsed


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the gateway would do: call `route` with `message`, or answer `error`."""

    route: Route | None = None
    message: Any = None
    error: EdgeError | None = None


@dataclasses.dataclass(frozen=True)
class Decoding:
    """The compiled routes, and the gateway's `_message` with the one setting it reads."""

    router: Router[Route]
    json_depth: int = DEFAULT_JSON_DEPTH

    def run(self, data: bytes) -> Outcome:
        """Decode one input as the gateway would; raises only on a bug."""
        try:
            return self._run(request(*split(data)))
        except EdgeError as exc:
            return Outcome(error=exc)

    def _run(self, parsed: Request) -> Outcome:
        # As Gateway._handle and _call, in their order, without the backend call.
        request_id(parsed.headers.get(b"x-request-id"))
        found = self.router.match(parsed.method, parsed.path)
        if parsed.too_large:
            raise EdgeError(413, grpc.StatusCode.INVALID_ARGUMENT, "BODY_TOO_LARGE", "large")
        if found is None:
            allowed = self.router.allowed_methods(parsed.path)
            code = grpc.StatusCode.UNIMPLEMENTED if allowed else grpc.StatusCode.NOT_FOUND
            raise EdgeError(405 if allowed else 404, code, "UNROUTED", parsed.path)
        route, segments = found
        if parsed.grpc_metadata:
            forwarded_metadata(parsed.grpc_metadata)
        holder = types.SimpleNamespace(_json_depth=self.json_depth)
        message = Gateway._message(holder, route, segments, parsed)  # type: ignore[arg-type]
        timeout = parsed.headers.get(b"grpc-timeout")
        if timeout is not None:
            parse_grpc_timeout(timeout)
        message.SerializeToString()  # what the call's request_serializer does
        return Outcome(route=route, message=message)

    def check(self, data: bytes) -> Outcome:
        """run(), asserting that a refusal is a clean 4xx."""
        outcome = self.run(data)
        if outcome.error is not None:
            status = outcome.error.status
            assert 400 <= status < 500, f"{status} {outcome.error.reason}"
        return outcome


def build_decoding(work_dir: Path) -> Decoding:
    """Routes of the test library (compiled into `work_dir`, all public) and of PayNow's
    descriptor set (default access internal, as `make run`), in one router. Their channel
    is real but never called: compile_route only asks it for multicallables."""
    channel = grpc.insecure_channel("127.0.0.1:9")
    router: Router[Route] = Router()
    for descriptor_set, default_access in (
        (compile_library(work_dir), PUBLIC),
        (PAYNOW_SET, INTERNAL),
    ):
        pool, methods = load_descriptor_set(descriptor_set, default_access)
        for spec in methods:
            if INTERNAL in spec.access:
                continue  # never routed, as in app.build_gateway
            for binding in spec.bindings:
                route = compile_route(spec, binding, channel, pool)  # type: ignore[arg-type]
                router.add(binding.http_method, route.template, route)
    return Decoding(router)

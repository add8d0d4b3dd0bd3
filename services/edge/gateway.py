"""The per-request path: route, authenticate, build the message, call the backend, reply.

Kept flat on purpose: this is the code every request runs, so it does dict lookups and
precomputed calls only, and writes exactly one log line per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor_pool
from google.protobuf.message import Message
from opentelemetry.trace import Span, SpanKind

from services.framework import (
    CALLER_SERVICE_KEY,
    INTERNAL_TOKEN_KEY,
    MERCHANT_ID_KEY,
    REQUEST_ID_KEY,
    USER_ID_KEY,
)
from services.framework._tracing import extract_context, inject_context, recording, tracer

from .auth import AccessGate, Identity
from .cors import Cors
from .docs_page import DocsSite
from .errors import EdgeError, backend_error, backend_reply
from .health import BackendHealth
from .marshal import DEFAULT_JSON_DEPTH
from .metadata import (
    MetadataPairs,
    forwarded_metadata,
    parse_grpc_timeout,
    request_id,
    response_headers,
)
from .query import FieldPathError, FieldValueError
from .rate_limits import CREDENTIAL_FAILURES, Decision, RateLimiter, rate_limited
from .routes import Route
from .routing import Router
from .server import HttpConnection, Request
from .telemetry import AccessLog, EdgeMetrics, TraceParent, trace_carrier

__all__ = ["Gateway"]

_log = structlog.get_logger("edge")
_C = grpc.StatusCode
_JSON = "application/json"
_NDJSON = "application/x-ndjson"
HEALTH_PATH = "/healthz"


def _bad_request(reason: str, exc: Exception) -> EdgeError:
    return EdgeError(400, _C.INVALID_ARGUMENT, reason, str(exc))


class Gateway:
    """Answers every HTTP request the server parses."""

    def __init__(
        self,
        router: Router[Route],
        pool: descriptor_pool.DescriptorPool,
        *,
        gate: AccessGate,
        health: BackendHealth,
        cors: Cors,
        deadline_s: float,
        internal_token: str | None,
        json_depth: int = DEFAULT_JSON_DEPTH,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._router = router
        self._pool = pool
        self._gate = gate
        self._health = health
        self._cors = cors
        self._deadline_s = deadline_s
        self._json_depth = json_depth
        self._limiter = limiter
        # /openapi.json and /docs: built once here, from exactly the methods routed.
        self._docs = DocsSite.from_methods(dict.fromkeys(r.spec for r in router.routes()))
        self._metrics = EdgeMetrics.of()
        self._access_log = AccessLog()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Sent on every call so backends know the edge made it; identity is added per request.
        self._base: MetadataPairs = (
            [(INTERNAL_TOKEN_KEY, internal_token), (CALLER_SERVICE_KEY, "edge")]
            if internal_token
            else []
        )

    async def handle(self, request: Request, conn: HttpConnection) -> None:
        """Serve one request and log it; never raises (except cancellation)."""
        self._metrics.in_flight += 1
        self._active += 1
        self._idle.clear()
        try:
            if not recording():
                parent = TraceParent(request.headers.get(b"traceparent"))
                await self._handle(request, conn, None, parent)
                return
            carrier = trace_carrier(request.headers)
            context = extract_context(carrier) if carrier else None
            with tracer().start_as_current_span(
                f"HTTP {request.method}", context=context, kind=SpanKind.SERVER
            ) as span:
                await self._handle(request, conn, span, None)
        finally:
            self._metrics.in_flight -= 1
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no request is in flight, at most `timeout_s`; True if none is left."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Write out buffered access lines; release the Redis connection."""
        self._access_log.flush()
        if self._limiter is not None:
            await self._limiter.close()

    async def _handle(
        self,
        request: Request,
        conn: HttpConnection,
        span: Span | None,
        parent: TraceParent | None,
    ) -> None:
        started = time.perf_counter()
        rid = request_id(request.headers.get(b"x-request-id"))
        headers = [b"x-request-id: %s\r\n" % rid.encode()]
        if self._cors.enabled:
            headers += self._cors.headers(request.headers)
        label = "unmatched"
        try:
            found = self._router.match(request.method, request.path)
            if request.too_large:
                raise EdgeError(
                    413, _C.INVALID_ARGUMENT, "BODY_TOO_LARGE", "the request body is too large"
                )
            if found is None:
                label, status = await self._unrouted(request, conn, headers)
            else:
                route, segments = found
                label = route.label
                status = await self._call(
                    route, segments, request, conn, rid=rid, headers=headers, parent=parent
                )
        except EdgeError as exc:
            status = exc.status
            extra = [b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in exc.headers]
            conn.respond(status, headers + extra, exc.body(), _JSON)
        except Exception:
            _log.exception("edge_request_failed", route=label, request_id=rid)
            status = 500
            error = EdgeError(500, _C.INTERNAL, "INTERNAL", f"internal error (request {rid})")
            conn.respond(status, headers, error.body(), _JSON)
        elapsed = time.perf_counter() - started
        self._metrics.observe(request.method, label, status, elapsed)
        if span is not None:
            # Route labels already start with the method (`POST /v1/…`); others are paths.
            name = label if label.startswith(request.method) else f"{request.method} {label}"
            span.update_name(name)
            span.set_attribute("http.route", label)
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("paynow.request_id", rid)
            trace_id = format(span.get_span_context().trace_id, "032x")
        else:
            trace_id = parent.trace_id if parent is not None else ""
        self._access_log.write(
            request.method,
            label,
            status,
            duration_ms=round(elapsed * 1000, 3),
            request_id=rid,
            trace_id=trace_id,
        )

    async def _unrouted(
        self, request: Request, conn: HttpConnection, headers: list[bytes]
    ) -> tuple[str, int]:
        if request.path == HEALTH_PATH and request.method == "GET":
            status, body = await self._health.report()
            conn.respond(status, headers, body, _JSON)
            return HEALTH_PATH, status
        page = self._docs.page(request.path) if request.method == "GET" else None
        if page is not None:
            conn.respond(200, headers, *page)
            return request.path, 200
        allowed = self._router.allowed_methods(request.path)
        if self._cors.is_preflight(request.method, request.headers) and allowed:
            conn.respond(204, headers + self._cors.preflight(request.headers, allowed), b"", _JSON)
            return "preflight", 204
        if allowed:
            raise EdgeError(
                405,
                _C.UNIMPLEMENTED,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not allowed here; allowed: {', '.join(allowed)}",
                headers=[("Allow", ", ".join(allowed))],
                metadata={"method": request.method},
            )
        raise EdgeError(
            404, _C.NOT_FOUND, "ROUTE_NOT_FOUND", f"no route for {request.method} {request.path}"
        )

    def _message(self, route: Route, segments: list[str], request: Request) -> Message:
        message = route.request_class()
        try:
            if route.decoder.takes_body:
                content_type = request.headers.get(b"content-type", b"").decode("latin-1")
                route.decoder.decode(request.body, content_type, message, self._json_depth)
            if request.query:
                route.query.apply(message, request.query)
            # Path last: a value in the path wins over the same field in a `body: "*"`.
            for variable, set_field in route.path_setters:
                set_field(message, variable.extract(segments))
        except FieldPathError as exc:
            raise _bad_request("UNKNOWN_QUERY_PARAMETER", exc) from None
        except (FieldValueError, UnicodeDecodeError) as exc:
            raise _bad_request("INVALID_FIELD_VALUE", exc) from None
        key = request.headers.get(b"idempotency-key")
        if key is not None and route.idempotency_field is not None:
            value = key.decode("latin-1")
            current = getattr(message, route.idempotency_field)
            if current and current != value:
                raise EdgeError(
                    400,
                    _C.INVALID_ARGUMENT,
                    "IDEMPOTENCY_KEY_CONFLICT",
                    "the Idempotency-Key header and the idempotency_key field differ",
                )
            setattr(message, route.idempotency_field, value)
        return message

    async def _admit(self, route: Route, request: Request, headers: list[bytes]) -> Identity | None:
        """Authenticate the caller and spend its rate-limit token; the verified Identity
        (None on a public route). Raises EdgeError 401/403, or 429 past a budget."""
        identity = None
        limiter = self._limiter
        if not route.public:
            if limiter is not None:
                wait = limiter.blocked_for(request.client)
                if wait:
                    budget = limiter.budget(CREDENTIAL_FAILURES)
                    raise rate_limited(budget, Decision(False, budget.burst, 0, wait, wait))
            try:
                identity = await self._gate.check(route.spec.access, request.headers)
            except EdgeError as exc:
                if exc.status == 401 and limiter is not None:
                    refused = await limiter.failed_credentials(request.client)
                    if refused is not None:
                        budget = limiter.budget(CREDENTIAL_FAILURES)
                        raise rate_limited(budget, refused) from None
                raise
        if limiter is not None:
            budget, key = limiter.bucket(route.rate_limit_class, identity, request.client)
            decision = await limiter.take(budget, key)
            if not decision.allowed:
                raise rate_limited(budget, decision)
            headers.append(decision.headers(budget))
        return identity

    def _metadata(
        self, identity: Identity | None, request: Request, rid: str, parent: TraceParent | None
    ) -> MetadataPairs:
        metadata: MetadataPairs = [(REQUEST_ID_KEY, rid), *self._base]
        if identity is not None:
            if identity.user_id:
                metadata.append((USER_ID_KEY, identity.user_id))
            if identity.merchant_id:
                metadata.append((MERCHANT_ID_KEY, identity.merchant_id))
        if request.grpc_metadata:
            metadata += forwarded_metadata(request.grpc_metadata)
        if parent is not None:
            metadata.append(("traceparent", parent.value))
        else:
            trace_context: dict[str, str] = {}
            inject_context(trace_context)
            metadata += trace_context.items()
        return metadata

    async def _call(
        self,
        route: Route,
        segments: list[str],
        request: Request,
        conn: HttpConnection,
        *,
        rid: str,
        headers: list[bytes],
        parent: TraceParent | None,
    ) -> int:
        identity = await self._admit(route, request, headers)
        metadata = self._metadata(identity, request, rid, parent)
        message = self._message(route, segments, request)
        timeout = self._deadline_s
        asked = request.headers.get(b"grpc-timeout")
        if asked is not None:
            timeout = min(timeout, parse_grpc_timeout(asked))
        call = route.call(message, timeout=timeout, metadata=metadata)
        if route.spec.server_streaming:
            return await self._stream(route, call, conn, headers)
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            return self._backend_failed(exc, conn, headers)
        headers += response_headers(await call.initial_metadata(), await call.trailing_metadata())
        body, content_type = route.encoder.encode(reply)
        conn.respond(200, headers, body, content_type)
        return 200

    def _backend_failed(
        self, exc: grpc.aio.AioRpcError, conn: HttpConnection, headers: list[bytes]
    ) -> int:
        status, body, retry_after = backend_reply(exc, self._pool)
        headers += response_headers(exc.initial_metadata(), exc.trailing_metadata())
        if retry_after is not None:
            headers.append(b"retry-after: %d\r\n" % retry_after)
        conn.respond(status, headers, body, _JSON)
        return status

    async def _stream(
        self, route: Route, call: Any, conn: HttpConnection, headers: list[bytes]
    ) -> int:
        """Newline-delimited JSON, one message per line, each written as it arrives. An error
        before the first message is a plain error response; after it, one `{"error": …}` line."""
        started = False
        try:
            async for reply in call:
                body, content_type = route.encoder.encode(reply)
                if not started:
                    initial = response_headers(await call.initial_metadata())
                    ndjson = _NDJSON if content_type == _JSON else content_type
                    conn.start_stream(200, headers + initial, ndjson)
                    started = True
                await conn.send_chunk(body + b"\n" if content_type == _JSON else body)
        except grpc.aio.AioRpcError as exc:
            if not started:
                return self._backend_failed(exc, conn, headers)
            error = backend_error(exc, self._pool)[1]
            await conn.send_chunk(b'{"error":%s}\n' % error)
            conn.end_stream()
            return 200
        if not started:
            initial = response_headers(await call.initial_metadata())
            conn.start_stream(200, headers + initial, _NDJSON)
        conn.end_stream()
        return 200

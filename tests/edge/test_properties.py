"""Robustness properties of request decoding (issue #11): no input makes the path matcher,
the query parser, the JSON mapping or the HTTP parser raise anything but the clean errors
the gateway answers with a 4xx, and what they accept round-trips.

Hypothesis runs derandomized (the same examples every run, no example database), so CI is
reproducible; `@example`s pin the bugs these properties found.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import string
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from google.protobuf import (
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    message_factory,
    timestamp_pb2,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.edge.descriptors import MethodSpec
from services.edge.errors import EdgeError
from services.edge.marshal import BodyDecoder, ResponseEncoder
from services.edge.query import FieldPathError, FieldValueError, QueryBinder
from services.edge.routing import Router, Template, TemplateError, parse_template
from services.edge.server import HttpConnection, Limits, Request, serve

Library = tuple[descriptor_pool.DescriptorPool, dict[str, MethodSpec]]


def _settings(examples: int) -> settings:
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Text a client can send: every code point except lone surrogates (not encodable).
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
# Literal segments as a client sends them raw: no template syntax, nothing to decode.
_LITERAL = st.text(string.ascii_letters + string.digits + "-._~!$&'()+,;@", min_size=1, max_size=6)

# ---------------------------------------------------------------------------------- routing


@_settings(500)
@given(
    st.one_of(
        st.text(st.sampled_from("/{}=*:._a1b"), max_size=24),
        st.text(max_size=24),
        st.text(max_size=24).map(lambda text: "/" + text),
    )
)
@example("/{a=**}/b")
@example("/v1/{id}:")
def test_parse_template_raises_only_template_error(text: str) -> None:
    """Any string either parses into a consistent template or raises TemplateError."""
    try:
        template = parse_template(text)
    except TemplateError:
        return
    assert "**" not in template.segments[:-1]
    for variable in template.variables:
        end = len(template.segments) if variable.end is None else variable.end
        assert 0 <= variable.start < end <= len(template.segments)
    Router[str]().add("GET", template, text)


def _encoded(kind: str, multi: bool, draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """For one template segment: the raw path segments a client sends, and the values they
    bind (a multi-segment variable keeps an encoded slash as `%2F`)."""
    if kind == "*":
        values = [draw(_TEXT.filter(bool))]
    elif kind == "**":
        values = draw(st.lists(_TEXT, max_size=3))
    else:
        return [kind], [kind]
    raw = [quote(value, safe="") for value in values]
    return raw, [value.replace("/", "%2F") if multi else value for value in values]


@st.composite
def _templates(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    """A template the grammar allows, a path that matches it (variables percent-encoded as a
    client must), and the value each variable must extract."""
    template: list[str] = []
    path: list[str] = []
    expected: dict[str, str] = {}
    prefix = draw(_IDENT)
    count = draw(st.integers(0, 4))
    tail = draw(st.sampled_from(["", "**", "var**"]))
    for i in range(count + (1 if tail else 0)):
        last = i == count
        kind = tail if last else draw(st.sampled_from(["literal", "*", "var"]))
        if kind in ("*", "**"):
            template.append(kind)
            path += _encoded(kind, False, draw)[0]
        elif kind == "literal":
            template.append(draw(_LITERAL))
            path.append(template[-1])
        else:
            name = f"{prefix}{i}" + draw(st.sampled_from(["", ".inner", ".a.b"]))
            sub = draw(st.lists(st.one_of(_LITERAL, st.just("*")), max_size=3))
            sub += ["**"] if last else []
            multi = len(sub) > 1 or "**" in sub
            binding = f"{name}={'/'.join(sub)}" if sub else name
            template.append("{" + binding + "}")
            values: list[str] = []
            for part in sub or ["*"]:
                raw, bound = _encoded(part, multi, draw)
                path += raw
                values += bound
            expected[name] = "/".join(values)
    if not template:
        template.append(draw(_LITERAL))
        path.append(template[-1])
    verb = draw(st.one_of(st.just(""), _LITERAL))
    suffix = f":{verb}" if verb else ""
    return "/" + "/".join(template) + suffix, "/" + "/".join(path) + suffix, expected


@_settings(400)
@given(_templates(), st.sampled_from(["GET", "POST", "PATCH", "DELETE"]))
def test_a_path_built_for_a_template_matches_it_and_its_variables_round_trip(
    case: tuple[str, str, dict[str, str]], method: str
) -> None:
    """Single-segment variables decode everything; multi-segment ones keep `%2F` as sent."""
    text, path, expected = case
    template = parse_template(text)
    router: Router[str] = Router()
    router.add(method, template, text)
    found = router.match(method, path)
    assert found is not None, (text, path)
    route, segments = found
    assert route == text
    assert {v.field_path: v.extract(segments) for v in template.variables} == expected
    assert router.allowed_methods(path) == [method]


def _library_router(library: Library) -> Router[Template]:
    router: Router[Template] = Router()
    for spec in library[1].values():
        for binding in spec.bindings:
            template = parse_template(binding.template)
            router.add(binding.http_method, template, template)
    return router


_PATH_PIECES = st.sampled_from(
    ["/", "v1", "shelves", "books", "library", "any", "s1", ":", ":search", ":checkout",
     "%", "%2F", "%2f", "%FF", "%C3%28", "%zz", "?", "..", "", "theme", "cover", "*", "é"]
)  # fmt: skip


@_settings(600)
@given(
    st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "get", ""]),
    st.one_of(
        st.lists(_PATH_PIECES, max_size=12).map("".join),
        st.lists(_PATH_PIECES, max_size=12).map(lambda parts: "/" + "/".join(parts)),
        st.text(max_size=40),
        st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
    ),
)
@example("GET", "/v1/shelves/%FF")
@example("GET", "")
@example("OPTIONS", "*")
def test_matching_any_path_returns_a_route_or_none_and_only_decoding_can_fail(
    library: Library, method: str, path: str
) -> None:
    """match() and allowed_methods() never raise; extracting a matched route's variables
    raises at most UnicodeDecodeError (bad UTF-8 after `%`), which the gateway makes 400."""
    router = _library_router(library)
    allowed = router.allowed_methods(path)
    found = router.match(method, path)
    if found is None:
        assert method not in allowed
        return
    assert method in allowed
    template, segments = found
    for variable in template.variables:
        with contextlib.suppress(UnicodeDecodeError):
            variable.extract(segments)


# ------------------------------------------------------------------------------------ query

_QUERY_NAMES = st.one_of(
    st.sampled_from(
        ["shelf_id", "shelfId", "filter", "filter.author", "filter.author.display_name",
         "filter.author.displayName", "filter.genre", "tags", "genre", "min_pages", "minPages",
         "in_print", "after", "max_age", "maxAge", "max_price", "max_price.value", "read_mask",
         "rating", "cursor", "years", "note", "filter..author", "", ".", "tags.x",
         "book.name", "book.author.display_name", "update_mask", "borrower", "x" * 300]
    ),
    st.lists(st.sampled_from(["filter", "author", "display_name", "genre", "a"]), max_size=40)
    .map(".".join),
    _TEXT,
)  # fmt: skip
_QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["", "0", "-0", "1", "-1", "true", "false", "yes", "GENRE_HISTORY", "GENRE_NOPE",
         "2147483648", "-9223372036854775809", "18446744073709551616", "9" * 5000, "1e400",
         "nan", "-inf", "1_000", "٣", "²", "0x10", "2024-01-02T03:04:05Z",
         "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2024-01-02T03:04:05.0000000001Z",
         "2024-01-02T03:04:05+99:99", "2024-01-02T03:04:05+", "2024-13-45T99:99:99Z", "1.5s",
         "-1.5s", "315576000001s", "1.s", ".5s", "s", "1e9s", "a,b", "a_b", "A_B,c", ",,",
         "title,author.displayName", "AQI", "AQI=", "AQ==", "A", "_-_-", "%", "é"]
    ),
    st.integers().map(str),
    st.floats().map(repr),
    _TEXT,
)  # fmt: skip
_RAW_JUNK = st.sampled_from(["%", "%G", "%FF", "%C3%28", "%%", "+", "&", "=", "&&", ";", "#"])


@st.composite
def _queries(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        name = quote(draw(_QUERY_NAMES), safe=".") if draw(st.booleans()) else draw(_QUERY_NAMES)
        value = quote(draw(_QUERY_VALUES), safe="") if draw(st.booleans()) else draw(_QUERY_VALUES)
        parts.append(draw(st.sampled_from([f"{name}={value}", name, f"{name}={value}={value}"])))
        if draw(st.booleans()):
            parts.append(draw(_RAW_JUNK))
    return "&".join(parts)


_QUERY_METHODS = {
    # method: the fields its route binds from the path or body (as routes.compile_route)
    "SearchBooks": ("shelf_id",),
    "UpdateBook": ("book.name", "book"),
    "CreateBook": ("shelf_id", "book"),
    "GetBook": ("name",),
    "ExportBooks": ("shelf_id",),
}


@_settings(600)
@given(st.sampled_from(sorted(_QUERY_METHODS)), st.one_of(_queries(), st.text(max_size=60)))
@example("SearchBooks", "genre=GENRE_HISTORY&genre=1")
@example("SearchBooks", "min_pages=" + "9" * 5000)
@example("UpdateBook", "update_mask=a_b")
def test_any_query_sets_fields_or_raises_only_the_400_errors(
    library: Library, method: str, query: str
) -> None:
    """QueryBinder.apply succeeds or raises FieldPathError / FieldValueError, both 400."""
    spec = library[1][method]
    message = message_factory.GetMessageClass(spec.input)()
    binder = QueryBinder(spec.input, _QUERY_METHODS[method], allowed=True)
    try:
        binder.apply(message, query)
    except (FieldPathError, FieldValueError):
        return
    message.SerializeToString()


_INT64 = st.integers(-(2**63), 2**63 - 1)
_TIMESTAMPS = st.tuples(st.integers(-62135596800, 253402300799), st.integers(0, 999_999_999))
_DURATIONS = st.integers(-315576000000 * 10**9 - 999_999_999, 315576000000 * 10**9 + 999_999_999)
_MASK_PATHS = st.lists(
    st.lists(st.from_regex(r"[a-z]+(_[a-z]+)*", fullmatch=True), min_size=1, max_size=3).map(
        ".".join
    ),
    max_size=3,
)
_SEARCH_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "filter.author.display_name": _TEXT,
    "filter.genre": st.sampled_from(["GENRE_FICTION", "GENRE_HISTORY", 1, 2, 7]),
    "tags": st.lists(_TEXT, max_size=3),
    "genre": st.sampled_from(["GENRE_UNSPECIFIED", "GENRE_HISTORY", 0, 2, 9]),
    "min_pages": _INT64,
    "in_print": st.booleans(),
    "after": _TIMESTAMPS,
    "max_age": _DURATIONS,
    "max_price": _INT64,
    "read_mask": _MASK_PATHS,
    "rating": st.floats(allow_nan=False),
    "cursor": st.binary(max_size=12),
    "years": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3),
    "note": _TEXT,
}


def _query_text(name: str, value: Any) -> list[str]:  # noqa: PLR0911 (one per field kind)
    """The query-string forms of `value` for field `name` (one per repetition)."""
    if name == "after":
        stamp = timestamp_pb2.Timestamp(seconds=value[0], nanos=value[1])
        return [stamp.ToJsonString()]
    if name == "max_age":
        duration = duration_pb2.Duration()
        duration.FromNanoseconds(value)
        return [duration.ToJsonString()]
    if name == "read_mask":
        return [field_mask_pb2.FieldMask(paths=value).ToJsonString()]
    if name == "cursor":
        return [base64.urlsafe_b64encode(value).decode().rstrip("=")]
    if name == "in_print":
        return ["true" if value else "false"]
    if isinstance(value, list):
        return [str(item) for item in value]
    return [repr(value) if isinstance(value, float) else str(value)]


def _set_directly(message: Any, name: str, value: Any) -> None:
    *parents, leaf = name.split(".")
    for parent in parents:
        message = getattr(message, parent)
    if name == "after":
        message.after.seconds, message.after.nanos = value
    elif name == "max_age":
        message.max_age.FromNanoseconds(value)
    elif name == "read_mask":
        message.read_mask.paths.extend(value)
    elif name in ("max_price", "note"):
        getattr(message, leaf).value = value
    elif isinstance(value, list):
        getattr(message, leaf).extend(value)
    else:
        setattr(message, leaf, value)


def _genre_number(library: Library, value: Any) -> Any:
    """An enum value name's number; anything else unchanged."""
    genre = library[0].FindEnumTypeByName("testing.library.v1.Genre")
    if isinstance(value, str) and value in genre.values_by_name:
        return genre.values_by_name[value].number
    return value


def _json_name(dotted: str) -> str:
    return ".".join(
        part.split("_")[0] + "".join(w.title() for w in part.split("_")[1:])
        for part in dotted.split(".")
    )


@_settings(200)
@given(st.dictionaries(st.sampled_from(sorted(_SEARCH_VALUES)), st.none(), max_size=14).flatmap(
    lambda names: st.fixed_dictionaries({n: _SEARCH_VALUES[n] for n in names})
), st.booleans())  # fmt: skip
def test_valid_query_values_land_in_the_message_unchanged(
    library: Library, values: dict[str, Any], json_names: bool
) -> None:
    """Every valid value, set through the query by proto or JSON name, equals the value the
    message would hold if set directly: ints to 64 bits, floats, enums by name or number,
    base64url bytes, Timestamp, Duration, FieldMask and wrappers."""
    spec = library[1]["SearchBooks"]
    request_class = message_factory.GetMessageClass(spec.input)
    pairs = [
        (_json_name(name) if json_names else name, text)
        for name, value in values.items()
        for text in _query_text(name, value)
    ]
    got = request_class()
    QueryBinder(spec.input, ("shelf_id",), allowed=True).apply(got, urlencode(pairs))
    want = request_class()
    for name, value in values.items():
        _set_directly(want, name, _genre_number(library, value))
    assert got == want


# ------------------------------------------------------------------------------ JSON bodies

_BODY_METHODS = {"CheckoutBook": "*", "CreateBook": "book", "UpdateBook": "book"}
_CLEAN_REASONS = {"MALFORMED_JSON", "UNKNOWN_FIELD", "INVALID_FIELD_VALUE", "JSON_TOO_DEEP"}
_KEYS = st.one_of(
    st.sampled_from(
        ["name", "title", "author", "displayName", "display_name", "genre", "pageCount",
         "page_count", "publishTime", "publish_time", "borrower", "idempotencyKey",
         "idempotency_key", "book", "shelfId", "rating", "after", "maxAge", "readMask",
         "maxPrice", "note", "cursor", "years", "tags", "filter", "@type", "value"]
    ),
    _TEXT,
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),
    _TEXT,
    st.sampled_from(["GENRE_HISTORY", "2024-01-02T03:04:05Z", "1.5s", "a,b", "NaN", "-Infinity",
                     "AQI=", "9223372036854775808", "1e400"]),
)  # fmt: skip
_JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


def _decoder(library: Library, method: str, body_rule: str) -> tuple[BodyDecoder, Any]:
    pool, methods = library
    spec = methods[method]
    return BodyDecoder(spec.input, body_rule, pool), message_factory.GetMessageClass(spec.input)


def _decode_cleanly(decoder: BodyDecoder, message: Any, body: bytes, depth: int = 32) -> str:
    """The reason of the 400 the decoder raised, or "" when it accepted the body."""
    try:
        decoder.decode(body, "application/json", message, depth)
    except EdgeError as exc:
        refused = (exc.status, exc.reason)
    else:
        message.SerializeToString()
        return ""
    assert refused[0] == 400
    assert refused[1] in _CLEAN_REASONS
    return refused[1]


@_settings(600)
@given(
    st.sampled_from([*sorted(_BODY_METHODS), "SearchBooks"]),
    st.one_of(
        st.binary(max_size=64),
        _JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(_KEYS, _JSON_VALUES, max_size=5).map(lambda v: json.dumps(v).encode()),
    ),
)
@example("SearchBooks", b'{"rating": 1' + b"0" * 400 + b"}")
@example("CreateBook", b'{"pageCount": 1' + b"0" * 5000 + b"}")
@example("CheckoutBook", b"\xff\xfe{\x00")
def test_any_body_is_decoded_or_refused_with_a_clean_400(
    library: Library, method: str, body: bytes
) -> None:
    """Arbitrary bytes and arbitrary JSON raise only EdgeError 400 with a known reason.
    SearchBooks takes no body, so its request stands in for a `body: "*"` message with a
    double, Timestamp, Duration, FieldMask, wrappers, bytes and repeated fields."""
    rule = _BODY_METHODS.get(method, "*")
    decoder, request_class = _decoder(library, method, rule)
    _decode_cleanly(decoder, request_class(), body)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_TRICKY_TEXT = st.text(st.sampled_from('ab"\\[]{}\u0122\u2222\u5b5b\U0001f600'), max_size=4)
_NESTED = st.recursive(
    st.one_of(_TRICKY_TEXT, st.integers(0, 9)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_TRICKY_TEXT, inner, max_size=3)
    ),
    max_leaves=10,
)


@_settings(600)
@given(
    _NESTED,
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32"]),
    st.integers(1, 4),
)
@example(["\u0122", [[["x"]]]], "utf-16-le", 2)
def test_the_depth_limit_is_exact_in_every_encoding_json_accepts(
    library: Library, value: Any, encoding: str, limit: int
) -> None:
    """JSON deeper than the limit is always JSON_TOO_DEEP, and never otherwise, whatever
    the strings hold and whichever encoding json.loads detects. The example is the bug this
    found: in UTF-16, U+0122 is the bytes `22 01`, whose `"` put the bracket scan out of step
    with the strings, so brackets went uncounted and json.loads recursed as deep as sent."""
    decoder, request_class = _decoder(library, "CreateBook", "book")
    body = json.dumps({"title": value}, ensure_ascii=False).encode(encoding)
    reason = _decode_cleanly(decoder, request_class(), body, limit)
    assert (reason == "JSON_TOO_DEEP") == (1 + _depth(value) > limit)


_BOOKS = st.fixed_dictionaries(
    {
        "name": _TEXT,
        "title": _TEXT,
        "genre": st.integers(0, 2),
        "page_count": _INT64,
    },
    optional={
        "author": _TEXT.map(lambda name: {"display_name": name}),
        "publish_time": _TIMESTAMPS.map(lambda t: {"seconds": t[0], "nanos": t[1]}),
    },
)


@_settings(300)
@given(_BOOKS)
def test_an_encoded_response_decodes_back_to_the_same_message(
    library: Library, fields: dict[str, Any]
) -> None:
    """A Book the edge sends (lowerCamel, int64 as a string) is the Book it reads back from
    a `body: "book"` request; a SearchRequest echo does the same with `*`."""
    pool, methods = library
    book_class = message_factory.GetMessageClass(methods["GetBook"].output)
    book = book_class(**fields)
    encoded, content_type = ResponseEncoder(methods["GetBook"].output, "", pool).encode(book)
    assert content_type == "application/json"
    assert json.loads(encoded)["pageCount"] == str(fields["page_count"])
    decoder, request_class = _decoder(library, "CreateBook", "book")
    request = request_class()
    decoder.decode(encoded, content_type, request)
    assert request.book == book


@_settings(200)
@given(st.dictionaries(st.sampled_from(sorted(_SEARCH_VALUES)), st.none(), max_size=14).flatmap(
    lambda names: st.fixed_dictionaries({n: _SEARCH_VALUES[n] for n in names})
))  # fmt: skip
def test_every_kind_of_field_round_trips_through_json(
    library: Library, values: dict[str, Any]
) -> None:
    """SearchRequest (echoed by SearchBooks) holds every scalar and well-known type."""
    pool, methods = library
    spec = methods["SearchBooks"]
    message = message_factory.GetMessageClass(spec.input)()
    for name, value in values.items():
        _set_directly(message, name, _genre_number(library, value) if "genre" in name else value)
    encoded, _ = ResponseEncoder(spec.output, "", pool).encode(message)
    decoder, request_class = _decoder(library, "SearchBooks", "*")
    back = request_class()
    decoder.decode(encoded, "application/json", back)
    assert back == message


# -------------------------------------------------------------------------------- HTTP layer


async def _echo(request: Request, conn: HttpConnection) -> None:
    conn.respond(200, [], request.body, "application/octet-stream")


_HEADER_LINES = st.one_of(
    st.sampled_from(
        [b"content-length: 5", b"content-length: 99999999999999999999", b"content-length: -1",
         b"transfer-encoding: chunked", b"expect: 100-continue", b"connection: close",
         b"x-forwarded-for: 10.0.0.1, \xff, ::1", b"grpc-metadata-x-forwarded-for: 1.2.3.4",
         b"grpc-metadata-a-bin: !!", b"upgrade: websocket", b"connection: upgrade",
         b"host: x", b": empty-name", b"x-long: " + b"v" * 300]
    ),
    st.binary(max_size=30),
)  # fmt: skip


@st.composite
def _http_bytes(draw: st.DrawFn) -> list[bytes]:
    """Chunks as a client might send them: raw noise, or request-shaped noise."""
    if draw(st.booleans()):
        data = draw(st.binary(max_size=200))
    else:
        method = draw(st.sampled_from([b"GET", b"POST", b"CONNECT", b"PRI", b"G\x00T", b""]))
        target = draw(st.one_of(st.sampled_from([b"/", b"*", b"http://h/x?y", b"/" * 70]),
                                st.binary(max_size=20)))  # fmt: skip
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTX", b""]))
        headers = draw(st.lists(_HEADER_LINES, max_size=6))
        body = draw(st.sampled_from([b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n"]))
        head = b"\r\n".join([b"%s %s %s" % (method, target, version), *headers])
        data = head + b"\r\n\r\n" + body
        data *= draw(st.integers(1, 3))  # pipelined
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


async def _feed(chunks: list[bytes]) -> tuple[list[dict[str, Any]], bytes]:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    limits = Limits(body_bytes=64, url_bytes=64, header_bytes=256, header_count=4)
    trusted = (ipaddress.ip_network("127.0.0.1/32"),)
    server = await serve(_echo, "127.0.0.1", 0, limits, trusted)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        response = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    await asyncio.sleep(0)
    return errors, response


@_settings(150)
@given(_http_bytes())
@example([b"GET / HTTP/1.1\r\nx-forwarded-for: \xff\r\n\r\n"])
def test_the_http_parser_never_raises_out_of_data_received(chunks: list[bytes]) -> None:
    """Whatever bytes arrive, in whatever pieces, over a real socket, the connection answers
    or closes; nothing reaches the loop's exception handler (which is where an exception
    out of data_received, or out of a request's task, would go)."""
    # A loop of its own, never made the thread's current one: asyncio.run() would leave the
    # main thread without a current loop, which later tests' fixtures still ask for.
    loop = asyncio.new_event_loop()
    try:
        errors, response = loop.run_until_complete(_feed(chunks))
    finally:
        loop.close()
    assert errors == []
    assert not response or response.startswith(b"HTTP/1.1 ")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-32-be"])
def test_utf16_and_utf32_json_bodies_still_decode(library: Library, encoding: str) -> None:
    """The depth fix transcodes non-UTF-8 bodies for the scan only; they still parse."""
    decoder, request_class = _decoder(library, "CreateBook", "book")
    message = request_class()
    body = json.dumps({"title": "\u0122" + "[" * 40}).encode(encoding)
    decoder.decode(body, "application/json", message, 2)
    assert message.book.title == "\u0122" + "[" * 40

"""gRPC's HTTP/2 headers (PROTOCOL-HTTP2.md): request header blocks, metadata, status.

Header blocks are encoded without HPACK's dynamic table: every field is a literal "without
indexing" (or "never indexed" for credentials, RFC 7541 §6.2.3), so encoding keeps no state
and a method's fixed fields are encoded once. Responses are decoded by the `hpack` package,
whose decoder must see every block in order to keep the peer's dynamic table.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import urllib.parse
from collections.abc import Iterable, Sequence

import grpc

__all__ = [
    "METADATA_KEY",
    "TEXT_VALUE",
    "MetadataError",
    "grpc_timeout",
    "http_status_code",
    "literal",
    "metadata_block",
    "parse_metadata",
    "request_prefix",
    "status_from",
]

# Metadata keys whose values are credentials: never put in an intermediary's table.
_SENSITIVE = frozenset({b"authorization", b"x-paynow-internal-token"})
# gRPC's metadata rules (PROTOCOL-HTTP2.md): keys of [0-9a-z_.-], text values printable ASCII.
METADATA_KEY = re.compile(r"[0-9a-z_.\-]+\Z")
TEXT_VALUE = re.compile(rb"[\x20-\x7e]*\Z")
# Response fields that are the protocol's, not the application's metadata.
_PROTOCOL_FIELDS = frozenset(
    {
        b":status",
        b"content-type",
        b"grpc-status",
        b"grpc-message",
        b"grpc-encoding",
        b"grpc-accept-encoding",
    }
)
_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# PROTOCOL-HTTP2.md / http-grpc-status-mapping.md: an HTTP status without grpc-status.
_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INTERNAL,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.UNAVAILABLE,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}

Metadata = tuple[tuple[str, str | bytes], ...]


class MetadataError(ValueError):
    """Metadata that cannot be sent: a key outside [0-9a-z_.-] or a reserved one, a text
    value that is not printable ASCII."""


def _length(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) whose first byte carries `first` above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A literal field with a literal name, not indexed (never indexed for credentials)."""
    first = 0x10 if name in _SENSITIVE else 0x00
    return bytes((first,)) + _length(len(name), 7, 0) + name + _length(len(value), 7, 0) + value


def request_prefix(path: str, authority: str, user_agent: str) -> bytes:
    """The fixed part of every request header block for one method."""
    # :method POST and :scheme http are entries 3 and 6 of HPACK's static table.
    return b"\x83\x86" + b"".join(
        literal(name, value.encode("ascii"))
        for name, value in (
            (b":path", path),
            (b":authority", authority),
            (b"content-type", "application/grpc"),
            (b"te", "trailers"),
            (b"user-agent", user_agent),
            (b"grpc-accept-encoding", "identity"),
        )
    )


def grpc_timeout(seconds: float) -> bytes:
    """`grpc-timeout` for the time left: whole milliseconds rounded up (at most 8 digits, so
    beyond about 27 hours it is given in seconds)."""
    # Rounded up, less a nanosecond of float noise (0.1 * 3 is 0.30000000000000004).
    millis = max(1, math.ceil(seconds * 1000 - 1e-6))
    if millis < 100_000_000:
        return b"%dm" % millis
    return b"%dS" % min(99_999_999, math.ceil(seconds - 1e-9))


@functools.lru_cache(maxsize=1024)
def _check_key(key: str) -> bytes:
    """The key's bytes; raises MetadataError. Cached: a few keys recur on every call (and
    bounded: clients choose the names of the Grpc-Metadata-* headers they send)."""
    if not METADATA_KEY.match(key) or key.startswith(("grpc-", ":")) or key == "te":
        raise MetadataError(f"metadata key {key!r} cannot be sent")
    return key.encode("ascii")


def metadata_block(metadata: Iterable[tuple[str, str | bytes]]) -> bytes:
    """Header fields for call metadata; `-bin` values are base64 (unpadded), others must be
    printable ASCII. Raises MetadataError."""
    return b"".join([_metadata_field(key, value) for key, value in metadata])


@functools.lru_cache(maxsize=512)
def _metadata_field(key: str, value: str | bytes) -> bytes:
    # Cached: most pairs the edge sends are the same on every call (its caller name, the
    # internal credential); per-request ones (request id, traceparent) just pass through.
    name = _check_key(key)
    if key.endswith("-bin"):
        raw = value if isinstance(value, bytes) else value.encode()
        return literal(name, base64.b64encode(raw).rstrip(b"="))
    if isinstance(value, str) and value.isascii() and TEXT_VALUE.match(raw := value.encode()):
        return literal(name, raw)
    raise MetadataError(f"metadata {key!r}: the value is not printable ASCII")


def parse_metadata(fields: Iterable[tuple[bytes, bytes]]) -> Metadata:
    """Application metadata from decoded response fields: protocol fields left out, `-bin`
    values base64-decoded (a value that is not base64 is dropped, as grpc's core does)."""
    pairs: list[tuple[str, str | bytes]] = []
    for name, value in fields:
        if name in _PROTOCOL_FIELDS or name.startswith(b":"):
            continue
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            try:
                pairs.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            except binascii.Error:
                continue
        else:
            pairs.append((key, value.decode("latin-1")))
    return tuple(pairs)


def http_status_code(http_status: bytes | None) -> grpc.StatusCode:
    """The gRPC code for a response whose :status is not 200."""
    try:
        number = int(http_status or b"")
    except ValueError:
        return grpc.StatusCode.UNKNOWN
    return _HTTP_TO_GRPC.get(number, grpc.StatusCode.UNKNOWN)


def status_from(fields: Sequence[tuple[bytes, bytes]]) -> tuple[grpc.StatusCode, str]:
    """The code and message of a trailer block; UNKNOWN when grpc-status is missing or
    not a code."""
    number: bytes | None = None
    message = b""
    for name, value in fields:
        if name == b"grpc-status":
            number = value
        elif name == b"grpc-message":
            message = value
    if number is None:
        return grpc.StatusCode.UNKNOWN, "the server sent no grpc-status"
    code = _STATUS_BY_NUMBER.get(int(number)) if number.isdigit() else None
    if code is None:
        return grpc.StatusCode.UNKNOWN, f"the server sent grpc-status {number!r}"
    return code, urllib.parse.unquote(message.decode("latin-1"), errors="replace")

"""HTTP headers ↔ gRPC metadata: request ids, `Grpc-Metadata-*`, `Grpc-Timeout`.

As grpc-gateway's runtime/context.go: `Grpc-Metadata-<key>` request headers become metadata
`<key>`, and backend headers and trailers come back as `Grpc-Metadata-<key>`. What a client
sends never reaches a backend as identity: `x-paynow-*` keys are dropped here, and only the
edge itself adds them after authenticating.

The client's address reaches backends as `x-forwarded-for` (auth throttles sign-ins per
address, believing the header only from an internal caller): the TCP peer the edge saw,
set by the server. A client's own `X-Forwarded-For` is believed only when the peer is a
configured trusted proxy (PAYNOW_EDGE_TRUSTED_PROXIES; none by default), and a client's
`Grpc-Metadata-X-Forwarded-For` never.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence

import grpc

from .errors import EdgeError
from .grpc_client.headers import METADATA_KEY, TEXT_VALUE

__all__ = [
    "FORWARDED_FOR_HEADER",
    "METADATA_PREFIX",
    "MetadataPairs",
    "TrustedProxies",
    "client_address",
    "forwarded_metadata",
    "parse_grpc_timeout",
    "request_id",
    "response_headers",
]

METADATA_PREFIX = b"grpc-metadata-"
MetadataPairs = list[tuple[str, str | bytes]]
TrustedProxies = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
# The one `Grpc-Metadata-*` name the server sets itself (and drops when a client sends it).
FORWARDED_FOR_HEADER = METADATA_PREFIX + b"x-forwarded-for"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}\Z")
# Keys a client may not set: the edge's own (identity, the internal credential, the request
# id it validated) and the ones gRPC or HTTP/2 reserve.
_DROPPED_PREFIXES = ("x-paynow-", "grpc-", ":")
_DROPPED = frozenset({"x-request-id", "authorization", "content-type", "te", "user-agent"})
_TIMEOUT = re.compile(rb"(\d{1,8})([HMSmun])\Z")
_UNIT_S = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def _invalid(reason: str, message: str) -> EdgeError:
    return EdgeError(400, grpc.StatusCode.INVALID_ARGUMENT, reason, message)


def request_id(header: bytes | None) -> str:
    """The client's `x-request-id` if it is a sane token (1 to 128 of [A-Za-z0-9._:-]), else a
    fresh random one: a hostile id must not break log lines or reach backends unchecked."""
    if header is not None and _REQUEST_ID.match(header):
        return header.decode()
    return os.urandom(12).hex()


def _trusted(address: str, trusted: TrustedProxies) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str, forwarded_for: bytes | None, trusted: TrustedProxies) -> str:
    """The client's address: `peer`, unless `peer` is a trusted proxy and the request has an
    X-Forwarded-For, whose entries are then read from the right, past trusted proxies."""
    if not trusted or forwarded_for is None or not _trusted(peer, trusted):
        return peer
    address = peer
    for entry in reversed(forwarded_for.decode("latin-1").split(",")):
        address = entry.strip()
        if not _trusted(address, trusted):
            break
    return address or peer


def forwarded_metadata(headers: Iterable[tuple[bytes, bytes]]) -> MetadataPairs:
    """Metadata from `Grpc-Metadata-*` headers (names already lower-cased), minus dropped keys.

    Raises EdgeError 400 for a `-bin` value that is not base64, or a text value that is not
    printable ASCII (gRPC could not send it).
    """
    pairs: MetadataPairs = []
    for name, value in headers:
        if name == FORWARDED_FOR_HEADER:
            # Only the server puts it here (it drops the client's own), on every request:
            # a valid key, not binary, so it skips the checks below.
            pairs.append(("x-forwarded-for", value.decode("latin-1")))
            continue
        key = name[len(METADATA_PREFIX) :].decode("latin-1")
        if key in _DROPPED or key.startswith(_DROPPED_PREFIXES) or not METADATA_KEY.match(key):
            continue
        if key.endswith("-bin"):
            try:
                pairs.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            except binascii.Error:
                raise _invalid("INVALID_METADATA", f"Grpc-Metadata-{key}: not base64") from None
        elif TEXT_VALUE.match(value):
            pairs.append((key, value.decode("ascii")))
        else:
            raise _invalid(
                "INVALID_METADATA",
                f"Grpc-Metadata-{key}: not printable ASCII (send binary values as -bin, base64)",
            )
    return pairs


def parse_grpc_timeout(value: bytes) -> float:
    """Seconds from a gRPC timeout (`2500m`, `3S`, `1H`); raises EdgeError 400 otherwise."""
    match = _TIMEOUT.match(value.strip())
    if match is None:
        raise _invalid(
            "INVALID_GRPC_TIMEOUT",
            "Grpc-Timeout: expected up to 8 digits and a unit of H M S m u n",
        )
    return int(match[1]) * _UNIT_S[match[2]]


def response_headers(*metadata: Sequence[tuple[str, str | bytes]] | None) -> list[bytes]:
    """Header lines for backend initial metadata and trailers, as `Grpc-Metadata-<key>`;
    binary values are base64, and gRPC's own keys (`grpc-*`) and `x-paynow-*` stay inside."""
    lines: list[bytes] = []
    for pairs in metadata:
        for key, value in pairs or ():
            if key.startswith(_DROPPED_PREFIXES) or key == "x-request-id":
                continue
            raw = base64.b64encode(value) if isinstance(value, bytes) else value.encode()
            lines.append(b"Grpc-Metadata-%s: %s\r\n" % (key.encode(), raw))
    return lines

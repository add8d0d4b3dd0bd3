"""Headers ↔ metadata: request ids, forwarded and dropped keys, Grpc-Timeout."""

from __future__ import annotations

import pytest

from services.edge.errors import EdgeError
from services.edge.metadata import (
    forwarded_metadata,
    parse_grpc_timeout,
    request_id,
    response_headers,
)


def test_sane_request_id_is_kept() -> None:
    """A client's token-like x-request-id is used as is."""
    assert request_id(b"req-1.a:b_c") == "req-1.a:b_c"


@pytest.mark.parametrize("header", [None, b"", b"has space", b"x" * 129, b"a\r\nb"])
def test_missing_or_hostile_request_id_is_replaced(header: bytes | None) -> None:
    """No id, or one that could break logs, gets a fresh random id."""
    fresh = request_id(header)
    assert len(fresh) == 24
    assert fresh != request_id(header)


def test_client_metadata_is_forwarded_but_identity_is_dropped() -> None:
    """`Grpc-Metadata-Foo` forwards; x-paynow-*, grpc-* and the request id do not."""
    headers = [
        (b"grpc-metadata-foo", b"bar"),
        (b"grpc-metadata-x-paynow-user-id", b"usr_evil"),
        (b"grpc-metadata-x-paynow-internal-token", b"guess"),
        (b"grpc-metadata-grpc-timeout", b"1S"),
        (b"grpc-metadata-x-request-id", b"spoof"),
        (b"grpc-metadata-trace-bin", b"AQI"),
    ]
    assert forwarded_metadata(headers) == [("foo", "bar"), ("trace-bin", b"\x01\x02")]


@pytest.mark.parametrize("value", [b"caf\xc3\xa9", b"tab\there", b"del\x7f"])
def test_text_metadata_that_is_not_printable_ascii_is_400(value: bytes) -> None:
    """gRPC text metadata is printable ASCII: anything else is the client's 400, not a 500."""
    with pytest.raises(EdgeError) as caught:
        forwarded_metadata([(b"grpc-metadata-note", value)])
    assert caught.value.status == 400
    assert "note" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"2500m", 2.5), (b"3S", 3.0), (b"1H", 3600.0), (b"2M", 120.0), (b"5u", 5e-6), (b"7n", 7e-9)],
)
def test_grpc_timeout_units(value: bytes, seconds: float) -> None:
    """Each gRPC timeout unit converts to seconds."""
    assert parse_grpc_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"10", b"1s", b"123456789S", b"-1S"])
def test_malformed_grpc_timeout_is_400(value: bytes) -> None:
    """A Grpc-Timeout that is not digits plus a unit is a 400."""
    with pytest.raises(EdgeError) as caught:
        parse_grpc_timeout(value)
    assert caught.value.status == 400


def test_backend_metadata_comes_back_as_grpc_metadata_headers() -> None:
    """Headers and trailers return prefixed; binary values as base64; grpc-* stays inside."""
    lines = response_headers(
        [("x-backend", "a")], [("x-sig-bin", b"\x01"), ("grpc-status-details-bin", b"x")]
    )
    assert lines == [b"Grpc-Metadata-x-backend: a\r\n", b"Grpc-Metadata-x-sig-bin: AQ==\r\n"]

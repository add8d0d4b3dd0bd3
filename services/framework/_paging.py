"""List paging per AIP-158: page sizes and opaque, tamper-evident page tokens.

A token is a keyset cursor (the sort key of the last item returned) plus a fingerprint of the
query's other parameters, so a token cannot be replayed against a different filter. It is
base64url JSON: opaque to clients by contract, not secret, so it carries nothing private.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from paynow.api.v1 import page_pb2

from ._errors import InvalidArgument, InvalidPageToken

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "PageRequest",
    "TimeOrdered",
    "encode_page_token",
    "page_request",
]

DEFAULT_PAGE_SIZE = page_pb2.PAGE_SIZE_LIMIT_DEFAULT
MAX_PAGE_SIZE = page_pb2.PAGE_SIZE_LIMIT_MAXIMUM


class TimeOrdered(Protocol):
    """Anything listed by (create_time, id): the usual keyset order of PayNow's lists."""

    @property
    def id(self) -> str: ...
    @property
    def create_time(self) -> datetime: ...


R = TypeVar("R", bound=TimeOrdered)


@dataclass(frozen=True)
class PageRequest:
    """What a repository needs to fetch one page: a size and where the last page ended."""

    size: int
    after: tuple[str, ...] | None
    query_fingerprint: str

    @property
    def after_time(self) -> tuple[datetime, str] | None:
        """The (create_time, id) the previous page ended on, for a keyset WHERE clause."""
        if self.after is None:
            return None
        try:
            return datetime.fromisoformat(self.after[0]), self.after[1]
        except (ValueError, IndexError):
            raise InvalidPageToken() from None

    def split(self, rows: Sequence[R]) -> tuple[list[R], str]:
        """This page's rows and the next token, from up to `size + 1` rows ordered by
        (create_time, id): repositories fetch one extra row to learn that more remain."""
        shown = list(rows[: self.size])
        last = (shown[-1].create_time.isoformat(), shown[-1].id) if shown else None
        return shown, self.next_token(last, len(rows) > self.size)

    def next_token(self, last_key: tuple[str, ...] | None, has_more: bool) -> str:
        """The token for the page after this one; empty when this page was the last."""
        if not has_more or last_key is None:
            return ""
        return encode_page_token(last_key, self.query_fingerprint)


def _fingerprint(query: Mapping[str, object]) -> str:
    canonical = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_page_token(last_key: tuple[str, ...], query_fingerprint: str) -> str:
    payload = json.dumps({"k": list(last_key), "q": query_fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def page_request(page_size: int, page_token: str, query: Mapping[str, object]) -> PageRequest:
    """Normalize AIP-158 paging fields.

    `query` holds the request's other list parameters (filters, the parent); a token made for
    other values is refused. Raises InvalidArgument for a negative size and
    InvalidPageToken for a token that is malformed or belongs to another query.
    """
    if page_size < 0:
        raise InvalidArgument(
            "page_size must not be negative",
            violations=[("page_size", "must be greater than or equal to 0")],
        )
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    fingerprint = _fingerprint(query)
    if not page_token:
        return PageRequest(size=size, after=None, query_fingerprint=fingerprint)
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = tuple(str(part) for part in payload["k"])
        token_fingerprint = payload["q"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidPageToken() from exc
    if token_fingerprint != fingerprint or not key:
        raise InvalidPageToken()
    return PageRequest(size=size, after=key, query_fingerprint=fingerprint)

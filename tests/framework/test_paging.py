"""AIP-158 paging: page sizes and opaque page tokens bound to their query."""

from __future__ import annotations

import pytest

from services.framework._errors import InvalidArgument, InvalidPageToken
from services.framework._paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, page_request


def test_zero_page_size_means_the_default() -> None:
    """page_size 0 gets the documented default."""
    assert page_request(0, "", {}).size == DEFAULT_PAGE_SIZE == 50


def test_oversized_page_is_lowered_to_the_maximum() -> None:
    """A size above the maximum is capped, not refused."""
    assert page_request(10_000, "", {}).size == MAX_PAGE_SIZE == 100


def test_negative_page_size_is_invalid_argument() -> None:
    """A negative size is refused and the violation names page_size."""
    with pytest.raises(InvalidArgument) as caught:
        page_request(-1, "", {})
    assert caught.value.violations[0][0] == "page_size"


def test_token_round_trips_the_last_key() -> None:
    """The next page starts after the key the previous page ended on."""
    first = page_request(2, "", {"state": 1})
    token = first.next_token(("2026-11-25T00:00:00", "pay_x"), has_more=True)
    assert page_request(2, token, {"state": 1}).after == ("2026-11-25T00:00:00", "pay_x")


def test_last_page_has_an_empty_token() -> None:
    """Only an empty next_page_token ends the list."""
    assert page_request(2, "", {}).next_token(("a",), has_more=False) == ""


def test_token_from_another_query_is_refused() -> None:
    """A token cannot be replayed against different filters."""
    token = page_request(2, "", {"state": 1}).next_token(("k",), has_more=True)
    with pytest.raises(InvalidPageToken):
        page_request(2, token, {"state": 2})


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", "e30", "eyJrIjpbXSwicSI6IngifQ"])
def test_malformed_token_is_refused(token: str) -> None:
    """Garbage, non-JSON, empty-object and empty-key tokens are INVALID_PAGE_TOKEN."""
    with pytest.raises(InvalidPageToken):
        page_request(2, token, {})


class _Row:
    def __init__(self, n: int) -> None:
        from datetime import UTC, datetime, timedelta

        self.id = f"row_{n}"
        self.create_time = datetime(2026, 11, 25, tzinfo=UTC) + timedelta(seconds=n)


def test_split_keeps_one_page_and_points_after_its_last_row() -> None:
    """Of size+1 fetched rows, size are shown and the token resumes after the last shown."""
    first = page_request(2, "", {})
    shown, token = first.split([_Row(1), _Row(2), _Row(3)])
    assert [r.id for r in shown] == ["row_1", "row_2"]
    assert page_request(2, token, {}).after_time == (_Row(2).create_time, "row_2")


def test_split_of_a_short_page_ends_the_list() -> None:
    """Fewer rows than size+1 means no next page."""
    assert page_request(2, "", {}).split([_Row(1)])[1] == ""

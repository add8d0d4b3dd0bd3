"""Domain datetimes become protobuf Timestamps in one place."""

from __future__ import annotations

from datetime import UTC, datetime

from services.framework import to_timestamp


def test_an_aware_datetime_keeps_its_instant() -> None:
    """The Timestamp names the same instant, to the microsecond."""
    when = datetime(2026, 11, 25, 3, 4, 5, 678901, tzinfo=UTC)
    stamp = to_timestamp(when)
    assert stamp is not None
    assert stamp.ToDatetime(tzinfo=UTC) == when


def test_an_unset_time_stays_unset() -> None:
    """None (an optional time not set yet) gives no Timestamp."""
    assert to_timestamp(None) is None

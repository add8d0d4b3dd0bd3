"""Domain datetimes to protobuf Timestamps, for every servicer."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

__all__ = ["to_timestamp"]


def to_timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """The Timestamp of an aware datetime; None stays None (an unset optional time)."""
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp

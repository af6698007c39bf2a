"""Small conversions between protobuf and Python values, shared by every adapter."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def from_ts(value: Timestamp) -> datetime | None:
    """None for an unset (zero) timestamp."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC)


def parse_date(value: str) -> date:
    """YYYY-MM-DD; raises ValueError otherwise."""
    return date.fromisoformat(value) if len(value) == 10 else date.fromisoformat("bad")

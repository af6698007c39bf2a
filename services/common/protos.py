"""Small conversions between protobuf and Python values, shared by every adapter."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.clock import as_utc


def ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    # a naive datetime is UTC here (as SQLite hands it back), never the host's local time
    out.FromDatetime(as_utc(value))
    return out


def from_ts(value: Timestamp) -> datetime | None:
    """None for an unset (zero) timestamp."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC)

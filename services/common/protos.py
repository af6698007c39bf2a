"""Small conversions between protobuf and Python values, shared by every adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, overload

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.clock import as_utc

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper


@overload
def ts(value: datetime) -> Timestamp: ...
@overload
def ts(value: None) -> None: ...
@overload
def ts(value: datetime | None) -> Timestamp | None: ...
def ts(value: datetime | None) -> Timestamp | None:
    """`value` as a UTC Timestamp (a naive datetime is taken as UTC); None stays None (an
    unset message field)."""
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


def enum_name(enum: _EnumTypeWrapper[Any], value: int) -> str:
    """The name of `value` in the proto enum `enum` (e.g. NoteState, 2 -> "NOTE_STATE_DRAFT")
    for a number kept as a plain int (a database column); ValueError for a number the enum
    lacks."""
    return enum.Name(value)

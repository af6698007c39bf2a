"""Times on the command line: shown and read in the branch's zone (BRANCH_TIMEZONE), sent
and stored as UTC Timestamps. One copy for every service's commands."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from services.common.settings import ConfigError, load_settings

DATE_TIME = "%Y-%m-%d %H:%M"


def zone() -> ZoneInfo:
    """The branch's zone. A bad BRANCH_ setting ends the command with its one-line message
    (times read or shown in a wrong zone would mislead)."""
    try:
        return ZoneInfo(load_settings().timezone)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def local(value: Timestamp, fmt: str = "%m-%d %H:%M", empty: str = "") -> str:
    """A Timestamp in the branch's zone, as fmt; `empty` for an unset one."""
    if value.seconds == 0 and value.nanos == 0:
        return empty
    return value.ToDatetime(tzinfo=UTC).astimezone(zone()).strftime(fmt)


def timestamp(text: str) -> Timestamp:
    """YYYY-MM-DD, 'YYYY-MM-DD HH:MM' or ISO 8601, in the branch's zone unless the text names
    an offset. Raises ValueError for anything else."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone())
    out = Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out

"""Times on the command line: shown and read in the branch's zone (BRANCH_TIMEZONE), sent
and stored as UTC Timestamps. One copy for every service's commands."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
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


def local(value: Timestamp, fmt: str = DATE_TIME, empty: str = "") -> str:
    """A Timestamp in the branch's zone, as fmt; `empty` for an unset one."""
    if value.seconds == 0 and value.nanos == 0:
        return empty
    return value.ToDatetime(tzinfo=UTC).astimezone(zone()).strftime(fmt)


def timestamp(value: str | date | datetime) -> Timestamp:
    """A time as a UTC Timestamp: a datetime (as services/cli/when.py's argparse types give;
    naive ones are branch-local), a date (its first instant in the branch's zone), or text
    YYYY-MM-DD, 'YYYY-MM-DD HH:MM' or ISO 8601, in the branch's zone unless it names an
    offset. Raises ValueError for other text."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone())
    out = Timestamp()
    out.FromDatetime(moment.astimezone(UTC))
    return out

"""SLA calendars: round-the-clock, or weekdays only in the branch's time zone.

A target's due time is the instant its calendar time since opening, less paused calendar
time, reaches the budget: due = add(open, budget + paused).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.common.clock import as_utc

WARN_FRACTION = 0.75
# Escalation level n (1 owner, 2 team lead, 3 supervisor) is raised at due + (n-1) * step,
# step being this fraction of the target.
ESCALATION_STEP = 0.5
MAX_LEVEL = 3


def _is_weekend(local: datetime) -> bool:
    return local.weekday() >= 5


def _next_midnight(local: datetime) -> datetime:
    day = (local + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, tzinfo=local.tzinfo)


def elapsed(start: datetime, end: datetime, business: bool, tz: ZoneInfo) -> float:
    """Calendar seconds between start and end (0 when end <= start)."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        return 0.0
    if not business:
        return (end - start).total_seconds()
    total = 0.0
    cursor = start.astimezone(tz)
    stop = end.astimezone(tz)
    while cursor < stop:
        boundary = min(_next_midnight(cursor), stop)
        if not _is_weekend(cursor):
            total += (boundary.astimezone(UTC) - cursor.astimezone(UTC)).total_seconds()
        cursor = boundary
    return total


def add(start: datetime, seconds: float, business: bool, tz: ZoneInfo) -> datetime:
    """The instant when `seconds` of calendar time have passed since start."""
    start = as_utc(start)
    if not business:
        return start + timedelta(seconds=seconds)
    remaining = seconds
    cursor = start.astimezone(tz)
    while True:
        midnight = _next_midnight(cursor)
        if _is_weekend(cursor):
            cursor = midnight
            continue
        room = (midnight.astimezone(UTC) - cursor.astimezone(UTC)).total_seconds()
        if remaining <= room:
            return (cursor.astimezone(UTC) + timedelta(seconds=remaining)).astimezone(UTC)
        remaining -= room
        cursor = midnight


def due_and_warn(
    opened: datetime, minutes: int, paused_s: float, business: bool, tz: ZoneInfo
) -> tuple[datetime, datetime]:
    budget = minutes * 60
    return (
        add(opened, budget + paused_s, business, tz),
        add(opened, budget * WARN_FRACTION + paused_s, business, tz),
    )


def escalation_level(due: datetime, minutes: int, now: datetime) -> int:
    """The level a breached target should have reached by now (0 before the due time)."""
    due, now = as_utc(due), as_utc(now)
    if now < due:
        return 0
    step = timedelta(minutes=max(minutes * ESCALATION_STEP, 1))
    return min(MAX_LEVEL, 1 + int((now - due) / step))

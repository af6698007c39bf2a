"""SLA calendars: round-the-clock, or the branch's working days (business time).

Business time counts whole working days of the branch's calendar (services.common.calendar:
China's public holidays removed, make-up working days added, operator overrides on top) in
the branch's time zone, midnight to midnight.

A target's due time is the instant its counted time since opening, less paused counted time,
reaches the budget: due = add(open, budget + paused). Escalation levels after the due time
are counted on the same clock, so a level never fires on a weekend or holiday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.common.calendar import BranchCalendar
from services.common.clock import as_utc

WARN_FRACTION = 0.75
# Escalation level n (1 owner, 2 team lead, 3 supervisor) is raised when (n-1) * step more
# of the target's own time (business or round-the-clock) has passed after the due time, step
# being this fraction of the target.
ESCALATION_STEP = 0.5
MAX_LEVEL = 3


def _next_midnight(local: datetime) -> datetime:
    day = local.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=local.tzinfo)


def elapsed(start: datetime, end: datetime, business: bool, tz: ZoneInfo,
            cal: BranchCalendar) -> float:
    """Counted seconds between start and end (0 when end <= start)."""
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
        if cal.is_working_day(cursor.date()):
            total += (boundary.astimezone(UTC) - cursor.astimezone(UTC)).total_seconds()
        cursor = boundary
    return total


def add(start: datetime, seconds: float, business: bool, tz: ZoneInfo,
        cal: BranchCalendar) -> datetime:
    """The instant when `seconds` of counted time have passed since start."""
    start = as_utc(start)
    if not business:
        return start + timedelta(seconds=seconds)
    remaining = seconds
    cursor = start.astimezone(tz)
    while True:
        midnight = _next_midnight(cursor)
        if not cal.is_working_day(cursor.date()):
            cursor = midnight
            continue
        room = (midnight.astimezone(UTC) - cursor.astimezone(UTC)).total_seconds()
        if remaining <= room:
            return (cursor.astimezone(UTC) + timedelta(seconds=remaining)).astimezone(UTC)
        remaining -= room
        cursor = midnight


def remaining(due: datetime, now: datetime, business: bool, tz: ZoneInfo,
              cal: BranchCalendar) -> int:
    """Counted seconds from now until due (whole seconds); negative: counted seconds past
    due. With business=True only the branch's working days count."""
    if as_utc(now) <= as_utc(due):
        return round(elapsed(now, due, business, tz, cal))
    return -round(elapsed(due, now, business, tz, cal))


def due_and_warn(
    opened: datetime, minutes: int, paused_s: float, business: bool, tz: ZoneInfo,
    cal: BranchCalendar,
) -> tuple[datetime, datetime]:
    budget = minutes * 60
    return (
        add(opened, budget + paused_s, business, tz, cal),
        add(opened, budget * WARN_FRACTION + paused_s, business, tz, cal),
    )


def escalation_times(due: datetime, minutes: int, business: bool, tz: ZoneInfo,
                     cal: BranchCalendar) -> list[datetime]:
    """When each level 1..MAX_LEVEL is due (UTC): level 1 at the due time, level n after
    (n-1) * ESCALATION_STEP of the target more, counted on the target's own clock."""
    step_s = max(minutes * ESCALATION_STEP, 1) * 60
    due = as_utc(due)
    return [due] + [add(due, step_s * n, business, tz, cal) for n in range(1, MAX_LEVEL)]


def escalation_level(due: datetime, minutes: int, now: datetime, business: bool,
                     tz: ZoneInfo, cal: BranchCalendar) -> int:
    """The level a breached target should have reached by now (0 before the due time)."""
    now = as_utc(now)
    if now < as_utc(due):
        return 0
    return sum(1 for at in escalation_times(due, minutes, business, tz, cal) if now >= at)

"""Time: stored in UTC, shown in the branch's zone, and injectable so SLA tests never sleep."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 3, 2, 1, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---- the branch's one "today" and its periods ----------------------------------------------
# Every day, week, month and year boundary is cut here, in the branch's zone (BRANCH_TIMEZONE).


def local_date(when: datetime, tz: tzinfo) -> date:
    """The branch-local date of an instant."""
    return as_utc(when).astimezone(tz).date()


def local_today(clock: Clock, tz: tzinfo) -> date:
    """Today in the branch's zone, from the injected clock."""
    return local_date(clock.now(), tz)


def day_start(day: date, tz: tzinfo) -> datetime:
    """The UTC instant the branch-local day begins (a zone's midnight, DST included)."""
    return datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)


def day_range(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[start of first, start of the day after last), as UTC instants."""
    return day_start(first, tz), day_start(last + timedelta(days=1), tz)


def week_of(day: date) -> tuple[date, date]:
    """Monday and Sunday of the day's week (ISO weeks)."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def month_of(day: date) -> tuple[date, date]:
    """First and last day of the day's month."""
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


def year_of(day: date) -> tuple[date, date]:
    return date(day.year, 1, 1), date(day.year, 12, 31)


def add_months(day: date, months: int) -> date:
    """The corresponding day `months` later; the month's last day when it has none
    (31 Jan + 1 month = 28/29 Feb). Civil Code art. 202."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def add_years(day: date, years: int) -> date:
    """The anniversary `years` later; 29 Feb falls on 28 Feb in a common year."""
    return add_months(day, 12 * years)

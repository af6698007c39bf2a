"""The branch's one business calendar: which dates are working days and which are trading days.

Sources, strongest first:
1. operator overrides (``branchctl calendar set``), kept by the directory and loaded at run time,
   so next year's State Council notice (out each December) applies without a release;
2. the ``chinese-calendar`` library: China's public holidays and their make-up working days
   (调休) from the State Council's notices, 2004 to the newest year it ships;
3. outside the library's years and without overrides, Monday to Friday.

Two rules come out of it:
- a *working day* (工作日) is a day the branch works: public holidays removed, make-up
  Saturdays/Sundays added. Hotline SLAs and their escalation levels, callback quotas, the
  new-account callback window's last day and the onsite weekly quota count working days, since
  they measure staff's work.
- a *trading day* (交易日) of the Shanghai and Shenzhen exchanges (XSHG/XSHE) is a working day that
  is also Monday to Friday: the exchanges close on make-up weekend days (上交所/深交所 休市安排).
  Rules about the market (ex-dates, settlement) use trading days.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import chinese_calendar

LIBRARY = f"chinese-calendar {getattr(chinese_calendar, '__version__', '')}".strip()
_HOLIDAYS: dict[date, object] = chinese_calendar.holidays
_MAKE_UP: dict[date, object] = chinese_calendar.workdays
LIBRARY_YEARS = frozenset(d.year for d in _HOLIDAYS)


@dataclass(frozen=True)
class Override:
    """An operator's word on one date: working or not, and why (e.g. the notice's number)."""

    day: date
    working: bool
    note: str = ""
    set_by: str = ""
    set_at: datetime | None = None


@dataclass(frozen=True)
class DayInfo:
    """What the calendar says about a date and where that comes from.

    kind: 'workday', 'weekend', 'holiday' or 'make-up workday';
    source: 'override', the library's name and version, or 'weekday rule'."""

    day: date
    working: bool
    trading: bool
    kind: str
    name: str
    source: str
    note: str = ""


def _holiday_name(value: object) -> str:
    return str(getattr(value, "value", value) or "")


class BranchCalendar:
    """Working and trading days in the branch's calendar; overrides may be replaced at any time
    (from another task than the readers: the swap is a single assignment under a lock)."""

    def __init__(self, overrides: Iterable[Override] = ()) -> None:
        self._lock = threading.Lock()
        self._overrides: dict[date, Override] = {o.day: o for o in overrides}
        self.loaded = False

    def replace_overrides(self, overrides: Iterable[Override]) -> None:
        fresh = {o.day: o for o in overrides}
        with self._lock:
            self._overrides = fresh
            self.loaded = True

    def overrides(self) -> list[Override]:
        return sorted(self._overrides.values(), key=lambda o: o.day)

    def covers(self, year: int) -> bool:
        """True when the library has the State Council's notice for the year."""
        return year in LIBRARY_YEARS

    def describe(self, day: date) -> DayInfo:
        weekday = day.weekday() < 5
        override = self._overrides.get(day)
        if override is not None:
            working = override.working
            kind = ("workday" if weekday else "make-up workday") if working else (
                "holiday" if weekday else "weekend")
            return DayInfo(day, working, working and weekday, kind, "", "override",
                           override.note)
        if day in _HOLIDAYS:
            return DayInfo(day, False, False, "holiday", _holiday_name(_HOLIDAYS[day]), LIBRARY)
        if day in _MAKE_UP and not weekday:
            return DayInfo(day, True, False, "make-up workday", _holiday_name(_MAKE_UP[day]),
                           LIBRARY)
        source = LIBRARY if self.covers(day.year) else "weekday rule"
        return DayInfo(day, weekday, weekday, "workday" if weekday else "weekend", "", source)

    def is_working_day(self, day: date) -> bool:
        return self.describe(day).working

    def is_trading_day(self, day: date) -> bool:
        return self.describe(day).trading

    def days(self, first: date, last: date) -> Iterator[DayInfo]:
        day = first
        while day <= last:
            yield self.describe(day)
            day += timedelta(days=1)

    def working_days(self, first: date, last: date) -> int:
        """Working days in [first, last]."""
        return sum(1 for d in self.days(first, last) if d.working)

    def next_working_day(self, day: date) -> date:
        """The day itself if working, else the first working day after it (a period whose last
        day is a holiday ends on the next working day: Civil Code art. 203)."""
        for _ in range(366):
            if self.is_working_day(day):
                return day
            day += timedelta(days=1)
        return day


__all__ = ["LIBRARY", "LIBRARY_YEARS", "BranchCalendar", "DayInfo", "Override"]

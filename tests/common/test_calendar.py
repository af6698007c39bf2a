"""Issue 12 (calendar and clock): the business calendar, the branch-local day, calendar
periods and business-time SLAs, as pure logic at several hours and zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.calendar import LIBRARY, BranchCalendar, Override
from services.common.clock import (
    FakeClock,
    add_years,
    day_range,
    day_start,
    local_today,
    month_of,
    week_of,
    year_of,
)
from services.common.suitability import assessment_expired, assessment_valid_until
from services.remote import sla

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = BranchCalendar()
NORMAL = 1440  # minutes: a normal ticket's resolution target, in business time


def sh(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=SHANGHAI)


# ---- the calendar ---------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "working", "trading", "kind"), [
    (date(2024, 10, 1), False, False, "holiday"),        # National Day
    (date(2024, 10, 7), False, False, "holiday"),
    (date(2024, 10, 8), True, True, "workday"),
    (date(2024, 9, 29), True, False, "make-up workday"),  # Sunday worked for National Day
    (date(2024, 10, 12), True, False, "make-up workday"),  # Saturday worked (调休)
    (date(2024, 2, 12), False, False, "holiday"),         # Spring Festival, a Monday
    (date(2024, 2, 18), True, False, "make-up workday"),  # Sunday worked for it
    (date(2025, 5, 1), False, False, "holiday"),          # Labour Day
    (date(2025, 4, 27), True, False, "make-up workday"),
    (date(2026, 2, 14), True, False, "make-up workday"),  # Saturday before Spring Festival
    (date(2026, 2, 16), False, False, "holiday"),
    (date(2026, 3, 7), False, False, "weekend"),
])
def test_working_and_trading_days(day: date, working: bool, trading: bool, kind: str) -> None:
    info = CAL.describe(day)
    assert (info.working, info.trading, info.kind) == (working, trading, kind)
    assert info.source == LIBRARY


def test_overrides_beat_the_library_and_fill_years_it_lacks() -> None:
    cal = BranchCalendar()
    # a year the library has no notice for: Monday to Friday until the operator adds it
    assert not cal.covers(2031)
    assert cal.describe(date(2031, 10, 1)).source == "weekday rule"
    assert cal.is_working_day(date(2031, 10, 1))
    cal.replace_overrides([
        Override(date(2031, 10, 1), working=False, note="国办发明电〔2030〕X号"),
        Override(date(2031, 10, 11), working=True, note="调休"),
        Override(date(2024, 10, 8), working=False, note="typhoon closure"),
    ])
    holiday = cal.describe(date(2031, 10, 1))
    assert (holiday.working, holiday.kind, holiday.source, holiday.note) == (
        False, "holiday", "override", "国办发明电〔2030〕X号")
    makeup = cal.describe(date(2031, 10, 11))
    assert (makeup.working, makeup.trading, makeup.kind) == (True, False, "make-up workday")
    assert not cal.is_working_day(date(2024, 10, 8))
    assert cal.next_working_day(date(2024, 10, 1)) == date(2024, 10, 9)
    cal.replace_overrides([])
    assert cal.is_working_day(date(2024, 10, 8))


def test_working_days_in_weeks() -> None:
    assert CAL.working_days(*week_of(date(2024, 10, 3))) == 1   # National Day week: Monday
    assert CAL.working_days(*week_of(date(2024, 9, 25))) == 6   # with make-up Sunday 29th
    assert CAL.working_days(*week_of(date(2024, 10, 10))) == 5  # 7th off, Saturday 12th on
    assert CAL.working_days(*week_of(date(2024, 3, 6))) == 5


# ---- one branch-local today ----------------------------------------------------------------

@pytest.mark.parametrize(("zone", "utc", "today"), [
    ("Asia/Shanghai", datetime(2024, 9, 30, 16, 5, tzinfo=UTC), date(2024, 10, 1)),  # 00:05
    ("Asia/Shanghai", datetime(2024, 10, 1, 15, 59, tzinfo=UTC), date(2024, 10, 1)),  # 23:59
    ("America/New_York", datetime(2024, 3, 1, 2, 0, tzinfo=UTC), date(2024, 2, 29)),  # 21:00
    ("Europe/London", datetime(2026, 10, 24, 23, 30, tzinfo=UTC), date(2026, 10, 25)),  # BST
    ("UTC", datetime(2024, 2, 29, 0, 0, tzinfo=UTC), date(2024, 2, 29)),
])
def test_local_today_is_cut_in_the_branch_zone(zone: str, utc: datetime, today: date) -> None:
    assert local_today(FakeClock(utc), ZoneInfo(zone)) == today
    start = day_start(today, ZoneInfo(zone))
    assert start <= utc < day_start(today + timedelta(days=1), ZoneInfo(zone))


# ---- calendar periods: the two-year assessment ---------------------------------------------

@pytest.mark.parametrize(("assessed", "checked", "expired"), [
    (date(2022, 3, 1), date(2024, 2, 29), False),  # issue 12 case 9: 730 days said expired
    (date(2022, 3, 1), date(2024, 3, 1), False),   # valid through the second anniversary
    (date(2022, 3, 1), date(2024, 3, 2), True),
    (date(2024, 2, 28), date(2026, 2, 27), False),  # case 9's second example
    (date(2024, 2, 28), date(2026, 2, 28), False),
    (date(2024, 2, 28), date(2026, 3, 1), True),
    (date(2024, 2, 29), date(2026, 2, 28), False),  # a 29 February's anniversary is the 28th
    (date(2024, 2, 29), date(2026, 3, 1), True),
    (date(2026, 2, 28), date(2028, 2, 28), False),
    (date(2026, 2, 28), date(2028, 2, 29), True),
    (None, date(2024, 1, 1), True),
])
def test_assessment_is_valid_until_its_second_anniversary(
        assessed: date | None, checked: date, expired: bool) -> None:
    assert assessment_expired(assessed, checked) is expired


def test_anniversaries() -> None:
    assert add_years(date(2024, 2, 29), 2) == date(2026, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
    assert assessment_valid_until(date(2022, 3, 1)) == date(2024, 3, 1)


# ---- business-time SLAs ---------------------------------------------------------------------

@pytest.mark.parametrize(("opened", "due", "level2", "level3"), [
    # issue 12 case 7: Thursday 16:00 -> due Friday 16:00; levels Monday 04:00 and 16:00,
    # not Saturday (the wall clock)
    (sh(2024, 3, 7, 16), sh(2024, 3, 8, 16), sh(2024, 3, 11, 4), sh(2024, 3, 11, 16)),
    # opened at 09:00: level 2 still on Friday 21:00, level 3 Monday 09:00
    (sh(2024, 3, 7, 9), sh(2024, 3, 8, 9), sh(2024, 3, 8, 21), sh(2024, 3, 11, 9)),
    # just after local midnight
    (sh(2024, 3, 7, 0, 5), sh(2024, 3, 8, 0, 5), sh(2024, 3, 8, 12, 5), sh(2024, 3, 11, 0, 5)),
    # escalations skip National Day: Monday 30 September 16:00 ... Tuesday 8 October 16:00
    (sh(2024, 9, 30, 16), sh(2024, 10, 8, 16), sh(2024, 10, 9, 4), sh(2024, 10, 9, 16)),
    # ... and count the make-up Saturday 12 October
    (sh(2024, 10, 10, 16), sh(2024, 10, 11, 16), sh(2024, 10, 12, 4), sh(2024, 10, 12, 16)),
])
def test_due_and_every_escalation_level_run_on_business_time(
        opened: datetime, due: datetime, level2: datetime, level3: datetime) -> None:
    got_due, _ = sla.due_and_warn(opened, NORMAL, 0, True, SHANGHAI, CAL)
    assert got_due == due.astimezone(UTC)
    times = sla.escalation_times(got_due, NORMAL, True, SHANGHAI, CAL)
    assert times == [due.astimezone(UTC), level2.astimezone(UTC), level3.astimezone(UTC)]
    for level, at in enumerate(times, start=1):
        assert sla.escalation_level(got_due, NORMAL, at - timedelta(seconds=1), True,
                                    SHANGHAI, CAL) == level - 1
        assert sla.escalation_level(got_due, NORMAL, at, True, SHANGHAI, CAL) == level


@pytest.mark.parametrize(("opened", "due"), [
    # issue 12 case 8: not Tuesday 1 October (National Day)
    (sh(2024, 9, 30, 16), sh(2024, 10, 8, 16)),
    (sh(2024, 9, 30, 0, 5), sh(2024, 10, 8, 0, 5)),
    (sh(2024, 9, 30, 23, 59), sh(2024, 10, 8, 23, 59)),
    # opened on a holiday: counting starts on the next working day's midnight
    (sh(2024, 10, 3, 10), sh(2024, 10, 9, 0)),
    # Friday before Spring Festival 2024: the Sunday 18 February make-up day counts
    (sh(2024, 2, 9, 16), sh(2024, 2, 18, 16)),
    # Labour Day 2025 (1-5 May), Wednesday 30 April 16:00
    (sh(2025, 4, 30, 16), sh(2025, 5, 6, 16)),
    # Sunday 29 September 2024 was worked: a ticket opened then is due Monday
    (sh(2024, 9, 29, 10), sh(2024, 9, 30, 10)),
])
def test_resolution_due_skips_holidays_and_counts_make_up_days(opened: datetime,
                                                               due: datetime) -> None:
    got, _ = sla.due_and_warn(opened, NORMAL, 0, True, SHANGHAI, CAL)
    assert got == due.astimezone(UTC)
    assert sla.elapsed(opened, due, True, SHANGHAI, CAL) == NORMAL * 60


def test_round_the_clock_targets_ignore_the_calendar() -> None:
    opened = sh(2024, 10, 1, 10)
    due, _ = sla.due_and_warn(opened, 240, 0, False, SHANGHAI, CAL)
    assert due == (opened + timedelta(hours=4)).astimezone(UTC)
    assert sla.escalation_times(due, 240, False, SHANGHAI, CAL)[2] == due + timedelta(hours=4)


# ---- periods cut in the branch's zone ------------------------------------------------------

def test_weeks_months_and_years_are_local_calendar_periods() -> None:
    assert week_of(date(2024, 9, 29)) == (date(2024, 9, 23), date(2024, 9, 29))
    assert month_of(date(2024, 2, 29)) == (date(2024, 2, 1), date(2024, 2, 29))
    assert month_of(date(2025, 12, 31)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert year_of(date(2024, 7, 1)) == (date(2024, 1, 1), date(2024, 12, 31))
    # March 2024 in Shanghai starts at 16:00 UTC on 29 February
    start, end = day_range(*month_of(date(2024, 3, 15)), SHANGHAI)
    assert start == datetime(2024, 2, 29, 16, 0, tzinfo=UTC)
    assert end == datetime(2024, 3, 31, 16, 0, tzinfo=UTC)
    # a London day across the autumn change lasts 25 hours
    london = ZoneInfo("Europe/London")
    start, end = day_range(date(2026, 10, 25), date(2026, 10, 25), london)
    assert end - start == timedelta(hours=25)

"""One way to type a time or a day in branchctl: argparse types for every --at, --since,
--from, --to, --callback-at, --called-at, --start, --end option.

What is accepted (in the branch's zone, BRANCH_TIMEZONE, unless the text names an offset):
  ISO forms         2026-12-01, 2026-12-01 14:30, 2026-12-01T14:30+08:00
  a clock time      12:00, 10am (today)
  words             now, today, yesterday, tomorrow 10am, 2 hours ago, last monday, dec 3
  Chinese           现在, 昨天, 明天 10:00, 明天上午10点, 下午3点半
Relative words are parsed by `dateparser` (a well-kept library); a text that starts like an ISO
date is read strictly (2026-13-01 is refused, not taken as 13 January). A value that is not a
time raises argparse.ArgumentTypeError, so argparse names the flag and exits 2.
"""

from __future__ import annotations

import argparse
import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from services.cli import timefmt
from services.cli.errors import UsageError
from services.cli.i18n import N_, _

ISO_START = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}")
NOW_WORDS = {"now", "现在", "此刻", "right now"}
EXAMPLES = N_("try 'YYYY-MM-DD HH:MM', '12:00', 'now', 'yesterday' or 'tomorrow 10am'")
DAY_EXAMPLES = N_("try 'YYYY-MM-DD', 'today', 'yesterday' or '3 days ago'")
# 上午10点 / 下午3点半 / 晚上8点15分 -> a clock dateparser reads
_ZH_CLOCK = re.compile(
    r"(上午|早上|早晨|中午|下午|晚上)?\s*(\d{1,2})\s*[点點时]\s*(半|(\d{1,2})\s*分?)?")


def zone() -> ZoneInfo:
    """The branch's zone (services/cli/timefmt.py); an argparse error when the setting is bad."""
    try:
        return timefmt.zone()
    except SystemExit as exc:
        raise argparse.ArgumentTypeError(str(exc.code)) from None


def _zh_clock(match: re.Match[str]) -> str:
    hour = int(match.group(2))
    if match.group(1) in ("下午", "晚上") and hour < 12:
        hour += 12
    minute = 30 if match.group(3) == "半" else int(match.group(4) or 0)
    return f" {hour:02d}:{minute:02d}"


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """`text` as an aware datetime; relative words count from `now` (default: the present, in
    the branch's zone). Raises ValueError with a reason when `text` names no time."""
    tz = zone()
    base = (now or datetime.now(tz)).astimezone(tz)
    typed = text.strip()
    if not typed:
        raise ValueError("empty")
    if ISO_START.match(typed):
        try:
            value = datetime.fromisoformat(typed)
        except ValueError as exc:  # e.g. "month must be in 1..12"
            raise ValueError(str(exc)) from None
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if typed.lower() in NOW_WORDS:
        return base
    import dateparser  # imported here: it takes a moment to load, and only times need it

    settings = {"TIMEZONE": str(tz), "RETURN_AS_TIMEZONE_AWARE": True, "DATE_ORDER": "YMD",
                "RELATIVE_BASE": base.replace(tzinfo=None)}
    parsed = dateparser.parse(_ZH_CLOCK.sub(_zh_clock, typed), languages=["en", "zh"],
                              settings=settings)
    if parsed is None:
        raise ValueError("not a time")
    return parsed.astimezone(tz)


def parse_day(text: str, now: datetime | None = None) -> date:
    """`text` as a calendar day in the branch's zone (a time in it is dropped)."""
    return parse_moment(text, now).astimezone(zone()).date()


def moment(text: str) -> datetime:
    """argparse type: a point in time (see the module docstring)."""
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("{text!r} is not a time ({why}); {examples}").format(
            text=text, why=exc, examples=_(EXAMPLES))) from None


def day(text: str) -> str:
    """argparse type: a calendar day, as the YYYY-MM-DD the APIs take."""
    try:
        return parse_day(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("{text!r} is not a day ({why}); {examples}").format(
            text=text, why=exc, examples=_(DAY_EXAMPLES))) from None


def in_order(start: str | date | datetime | None, end: str | date | datetime | None,
             flags: tuple[str, str]) -> None:
    """UsageError (exit 2) when both ends are given and the start is after the end (days as
    YYYY-MM-DD, or datetimes)."""
    def first(value: str | date | datetime) -> datetime:
        if isinstance(value, datetime):
            return value
        day = date.fromisoformat(value) if isinstance(value, str) else value
        return datetime.combine(day, time(), tzinfo=timefmt.zone())

    if start and end and first(start) > first(end):
        raise UsageError(_("{first} ({start}) is after {second} ({end})").format(
            first=flags[0], start=start, second=flags[1], end=end))

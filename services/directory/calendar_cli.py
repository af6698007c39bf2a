"""branchctl calendar ...: the branch's business calendar and the operator's overrides."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from branch.directory.v1 import calendar_pb2 as cpb
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.cli import when
from services.cli.branchctl import Ctl
from services.cli.errors import UsageError
from services.cli.i18n import _
from services.common.clock import SystemClock, local_today
from services.common.settings import load_settings

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _stub(ctl: Ctl) -> DirectoryServiceAsyncStub:
    return DirectoryServiceStub(ctl.channel("directory"))


def _today() -> date:
    return local_today(SystemClock(), ZoneInfo(load_settings().timezone))


def _rows(days: list[cpb.CalendarDay]) -> list[list[str]]:
    return [[d.date, WEEKDAYS[date.fromisoformat(d.date).weekday()],
             "yes" if d.working else "no", "yes" if d.trading else "no", d.kind, d.name,
             d.source, d.note + (f" ({d.set_by})" if d.set_by else "")] for d in days]


COLUMNS = ["date", "day", "working", "trading", "kind", "holiday", "source", "note"]


MAX_DAYS = 366  # what ListCalendarDays answers at once


def _days(text: str) -> int:
    """argparse type for --days: a whole number of days, 1 to MAX_DAYS."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of days from 1 to {MAX_DAYS}")
    return value


def span(first: date, days: int) -> date:
    """The last day shown; a span running past the calendar's end is a usage error."""
    try:
        return first + timedelta(days=days - 1)
    except OverflowError:
        raise UsageError(_("--from {first} --days {days}: runs past the year 9999").format(
            first=first, days=days)) from None


async def show(args: argparse.Namespace, ctl: Ctl) -> None:
    first = date.fromisoformat(args.start) if args.start else _today()
    last = span(first, args.days)
    resp = await _stub(ctl).ListCalendarDays(cpb.ListCalendarDaysRequest(
        start_date=first.isoformat(), end_date=last.isoformat()), metadata=ctl.metadata)
    days = [d for d in resp.days if args.all or d.kind != "workday"]
    ctl.table((_("calendar {first} .. {last}") if args.all
               else _("calendar {first} .. {last} (days off and exceptions)")).format(
                  first=first, last=last),
              COLUMNS, _rows(days))
    ctl.console.print(_("library: {library}, notices {first}-{last}; other years: Monday to "
                        "Friday plus overrides").format(library=resp.library,
                                                        first=resp.library_first_year,
                                                        last=resp.library_last_year))


async def overrides(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListCalendarDays(cpb.ListCalendarDaysRequest(overrides_only=True),
                                             metadata=ctl.metadata)
    ctl.table("calendar overrides", COLUMNS, _rows(list(resp.days)))


async def set_day(args: argparse.Namespace, ctl: Ctl) -> None:
    day = await _stub(ctl).SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
        date=args.date, working=args.working, note=args.note)), metadata=ctl.metadata)
    ctl.console.print(f"{day.date}: {day.kind} ({day.source})")


async def unset_day(args: argparse.Namespace, ctl: Ctl) -> None:
    await _stub(ctl).DeleteCalendarDay(cpb.DeleteCalendarDayRequest(date=args.date),
                                       metadata=ctl.metadata)
    ctl.console.print(_("{date}: override removed").format(date=args.date))


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("calendar", help=_("business calendar: holidays, make-up working "
                              "days and overrides"))
    sub = group.add_subparsers(dest="command", required=True)
    p = sub.add_parser("show", help=_("days off, make-up working days and overrides"))
    p.add_argument("--from", dest="start", type=when.day,
                   help=_("YYYY-MM-DD (default today, branch-local)"))
    p.add_argument("--days", type=_days, default=62,
                   help=_("how many days (1 to {max})").format(max=MAX_DAYS))
    p.add_argument("--all", action="store_true", help=_("every day, plain workdays too"))
    p.set_defaults(func=show)
    p = sub.add_parser("overrides", help=_("every operator override"))
    p.set_defaults(func=overrides)
    p = sub.add_parser("set", help=_("override one date (admin, supervisor; audited)"))
    p.add_argument("date", type=when.day, help=_("YYYY-MM-DD"))
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--holiday", dest="working", action="store_false",
                      help=_("the branch does not work that day"))
    kind.add_argument("--working", dest="working", action="store_true",
                      help=_("the branch works that day (make-up day, 调休)"))
    p.add_argument("--note", default="", help=_("why, e.g. the notice's number"))
    p.set_defaults(func=set_day)
    p = sub.add_parser("unset", help=_("remove a date's override (admin, supervisor; audited)"))
    p.add_argument("date", type=when.day, help=_("YYYY-MM-DD"))
    p.set_defaults(func=unset_day)

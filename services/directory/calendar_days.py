"""The business calendar's operator overrides, kept by the directory (one table, audited RPCs,
an event on each change); every service loads them into its BranchCalendar
(services.common.calendar_sync)."""

from __future__ import annotations

from datetime import timedelta

from branch.directory.v1 import calendar_pb2 as cpb
from sqlmodel import col, select

from services.common.auth import Principal
from services.common.calendar import LIBRARY, LIBRARY_YEARS, BranchCalendar, DayInfo, Override
from services.common.clock import Clock
from services.common.db import Database
from services.common.errors import NotFound, Violations
from services.common.events import emit
from services.common.fields import check_date, check_text
from services.common.protos import ts
from services.directory.models import CalendarDayRow

CHANGED = "branch.directory.calendar.changed"
MAX_LIST_DAYS = 366


def _override(row: CalendarDayRow) -> Override:
    return Override(day=row.day, working=row.working, note=row.note, set_by=row.set_by,
                    set_at=row.set_at)


def day_to_proto(info: DayInfo, override: Override | None = None) -> cpb.CalendarDay:
    out = cpb.CalendarDay(
        date=info.day.isoformat(), working=info.working, trading=info.trading, kind=info.kind,
        name=info.name, source=info.source, note=info.note)
    if override is not None:
        out.set_by = override.set_by
        if override.set_at is not None:
            out.update_time.CopyFrom(ts(override.set_at))
    return out


async def load_overrides(db: Database) -> list[Override]:
    async with db.read() as session:
        rows = (await session.exec(select(CalendarDayRow).order_by(
            col(CalendarDayRow.day)))).all()
    return [_override(r) for r in rows]


async def set_day(db: Database, clock: Clock, principal: Principal,
                  msg: cpb.CalendarDay) -> cpb.CalendarDay:
    v = Violations()
    day = check_date(v, "day.date", msg.date)
    check_text(v, "day.note", msg.note, max_len=200)
    v.raise_if_any()
    assert day is not None
    now = clock.now()
    async with db.transaction() as session:
        row = await session.get(CalendarDayRow, day)
        if row is None:
            row = CalendarDayRow(day=day, working=msg.working, note=msg.note.strip(),
                                 set_by=principal.staff_id, set_at=now)
        else:
            row.working, row.note = msg.working, msg.note.strip()
            row.set_by, row.set_at = principal.staff_id, now
        session.add(row)
        override = _override(row)
        out = day_to_proto(BranchCalendar([override]).describe(day), override)
        emit(session, subject=CHANGED, message=cpb.CalendarDayChanged(day=out),
             about=day.isoformat(), now=now)
    return out


async def delete_day(db: Database, clock: Clock, principal: Principal,
                     req: cpb.DeleteCalendarDayRequest) -> cpb.DeleteCalendarDayResponse:
    v = Violations()
    day = check_date(v, "date", req.date)
    v.raise_if_any()
    assert day is not None
    async with db.transaction() as session:
        row = await session.get(CalendarDayRow, day)
        if row is None:
            raise NotFound("no calendar override for {day}", day=day.isoformat())
        await session.delete(row)
        info = BranchCalendar().describe(day)
        emit(session, subject=CHANGED, message=cpb.CalendarDayChanged(
            day=day_to_proto(info), removed=True), about=day.isoformat(), now=clock.now())
    return cpb.DeleteCalendarDayResponse()


async def list_days(db: Database, req: cpb.ListCalendarDaysRequest
                    ) -> cpb.ListCalendarDaysResponse:
    overrides = await load_overrides(db)
    by_day = {o.day: o for o in overrides}
    cal = BranchCalendar(overrides)
    out = cpb.ListCalendarDaysResponse(library=LIBRARY, library_first_year=min(LIBRARY_YEARS),
                                       library_last_year=max(LIBRARY_YEARS))
    if req.overrides_only:
        out.days.extend(day_to_proto(cal.describe(o.day), o) for o in overrides)
        return out
    v = Violations()
    first = check_date(v, "start_date", req.start_date)
    last = check_date(v, "end_date", req.end_date)
    if first and last:
        if last < first:
            v.add("end_date", "must not be before start_date")
        elif last - first >= timedelta(days=MAX_LIST_DAYS):
            v.add("end_date", "at most {max_list_days} days after start_date",
                  max_list_days=MAX_LIST_DAYS)
    v.raise_if_any()
    assert first is not None and last is not None
    out.days.extend(day_to_proto(info, by_day.get(info.day)) for info in cal.days(first, last))
    return out


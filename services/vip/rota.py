"""The 24/7 on-call rota: shifts, who is on call, and gaps over the next days in the branch's
time zone (wall-clock days, so a daylight-saving change makes a day 23 or 25 hours)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from branch.vip.v1 import rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.errors import InvalidArgument, NotFound, Violations
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.vip import convert
from services.vip.core import Vip, timestamp, token_time
from services.vip.models import Shift

ROLE_FOR_SHIFT = {
    rota_pb2.SHIFT_ROLE_BROKER: "broker",
    rota_pb2.SHIFT_ROLE_ANALYST: "analyst",
    rota_pb2.SHIFT_ROLE_SUPERVISOR: "supervisor",
}
# a shift is at most a day on the wall clock (wall_clock_length)
MAX_SHIFT = timedelta(hours=24)
MAX_DAYS = 62


def wall_clock_length(start: datetime, end: datetime, tz: ZoneInfo) -> timedelta:
    """A shift's length on the branch's wall clock: 09:00 to 09:00 is 24 hours even across a
    daylight-saving change (25 or 23 hours elapsed)."""
    return (end.astimezone(tz).replace(tzinfo=None)
            - start.astimezone(tz).replace(tzinfo=None))


async def on_shift(session: AsyncSession, role: int, at: datetime) -> list[Shift]:
    """Shifts of the role covering the instant, earliest start first."""
    rows = await session.exec(
        select(Shift)
        .where(Shift.role == role, col(Shift.start_at) <= at, col(Shift.end_at) > at)
        .order_by(col(Shift.start_at), col(Shift.id))
    )
    return list(rows.all())


async def is_on_shift(session: AsyncSession, staff_id: str, role: int, at: datetime) -> bool:
    return any(s.staff_id == staff_id for s in await on_shift(session, role, at))


async def create_shift(vip: Vip, session: AsyncSession, principal: Principal,
                       msg: rota_pb2.Shift) -> rota_pb2.Shift:
    v = Violations()
    start = timestamp(v, "shift.start_time", msg.start_time)
    end = timestamp(v, "shift.end_time", msg.end_time)
    v.check(msg.role in ROLE_FOR_SHIFT, "shift.role", "BROKER, ANALYST or SUPERVISOR")
    named = {f for f, _ in v.items}
    if start is None and "shift.start_time" not in named:
        v.add("shift.start_time", "required")
    if end is None and "shift.end_time" not in named:
        v.add("shift.end_time", "required")
    if start and end:
        if end <= start:
            v.add("shift.end_time", "must be after start_time")
        elif wall_clock_length(start, end, vip.tz) > MAX_SHIFT:
            v.add("shift.end_time", "a shift is at most 24 hours on the branch's clock")
    v.check(len(msg.note) <= 200, "shift.note", "at most 200 characters")
    if not msg.staff_id:
        v.add("shift.staff_id", "required")
    elif msg.role in ROLE_FOR_SHIFT:
        await vip.check_staff(v, "shift.staff_id", msg.staff_id, ROLE_FOR_SHIFT[msg.role])
    v.raise_if_any()
    assert start is not None and end is not None
    row = Shift(id=new_id(), staff_id=msg.staff_id, role=msg.role, start_at=start, end_at=end,
                note=msg.note, created_at=vip.now(), created_by=principal.staff_id)
    session.add(row)
    return convert.shift_to_proto(row)


async def list_shifts(vip: Vip, req: api.ListShiftsRequest) -> api.ListShiftsResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token, parts=2)
    v = Violations()
    start = timestamp(v, "start_time", req.start_time)
    end = timestamp(v, "end_time", req.end_time)
    if start and end and end <= start:
        v.add("end_time", "must be after start_time")
    if req.role and req.role not in ROLE_FOR_SHIFT:
        v.add("role", "unknown role")
    v.raise_if_any()
    query = select(Shift).order_by(col(Shift.start_at), col(Shift.id)).limit(size + 1)
    if start:
        query = query.where(col(Shift.end_at) > start)
    if end:
        query = query.where(col(Shift.start_at) < end)
    if req.staff_id:
        query = query.where(Shift.staff_id == req.staff_id)
    if req.role:
        query = query.where(Shift.role == req.role)
    if after:
        from sqlalchemy import and_, or_

        at = token_time(after[0])
        query = query.where(or_(col(Shift.start_at) > at,
                                and_(col(Shift.start_at) == at, col(Shift.id) > str(after[1]))))
    async with vip.db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    rows = rows[:size]
    return api.ListShiftsResponse(
        shifts=[convert.shift_to_proto(r) for r in rows],
        next_page_token=encode_token(rows[-1].start_at.isoformat(), rows[-1].id) if more else "",
    )


async def delete_shift(vip: Vip, shift_id: str) -> api.DeleteShiftResponse:
    if not shift_id:
        raise InvalidArgument({"id": "required"})
    async with vip.db.transaction() as session:
        row = await session.get(Shift, shift_id)
        if row is None:
            raise NotFound("shift {shift_id} not found", shift_id=shift_id)
        await session.delete(row)
    return api.DeleteShiftResponse()


async def get_on_call(vip: Vip, req: api.GetOnCallRequest) -> api.GetOnCallResponse:
    v = Violations()
    at = timestamp(v, "time", req.time) or vip.now()
    v.raise_if_any()
    async with vip.db.read() as session:
        brokers = await on_shift(session, rota_pb2.SHIFT_ROLE_BROKER, at)
        analysts = await on_shift(session, rota_pb2.SHIFT_ROLE_ANALYST, at)
        supervisors = await on_shift(session, rota_pb2.SHIFT_ROLE_SUPERVISOR, at)
    return api.GetOnCallResponse(
        time=ts(at),
        brokers=[convert.shift_to_proto(s) for s in brokers],
        analysts=[convert.shift_to_proto(s) for s in analysts],
        supervisors=[convert.shift_to_proto(s) for s in supervisors],
    )


def window(vip: Vip, start: datetime, days: int) -> tuple[datetime, datetime]:
    """[start, end) in UTC: start rounded down to the local hour, end `days` local calendar
    days later at the same wall-clock time."""
    local = start.astimezone(vip.tz).replace(minute=0, second=0, microsecond=0)
    end_local = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=vip.tz)
    from datetime import UTC

    return local.astimezone(UTC), end_local.astimezone(UTC)


def uncovered(intervals: list[tuple[datetime, datetime]], start: datetime,
              end: datetime) -> list[tuple[datetime, datetime]]:
    gaps = []
    cursor = start
    for s, e in sorted(intervals):
        if e <= cursor:
            continue
        if s > cursor:
            gaps.append((cursor, min(s, end)))
        cursor = max(cursor, e)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return [(s, e) for s, e in gaps if e > s]


async def check_gaps(vip: Vip, req: api.CheckRotaGapsRequest) -> api.CheckRotaGapsResponse:
    v = Violations()
    role = req.role or rota_pb2.SHIFT_ROLE_BROKER
    v.check(role in ROLE_FOR_SHIFT, "role", "unknown role")
    v.check(0 <= req.days <= MAX_DAYS, "days", "between 1 and {max_days}", max_days=MAX_DAYS)
    start_time = timestamp(v, "start_time", req.start_time)
    v.raise_if_any()
    start, end = window(vip, start_time or vip.now(), req.days or 14)
    async with vip.db.read() as session:
        rows = (await session.exec(
            select(Shift.start_at, Shift.end_at).where(
                Shift.role == role, col(Shift.end_at) > start, col(Shift.start_at) < end)
        )).all()
    gaps = uncovered([(s, e) for s, e in rows], start, end)
    out = api.CheckRotaGapsResponse(
        window_hours=(end - start).total_seconds() / 3600,
        window_start_time=ts(start),
        window_end_time=ts(end),
        time_zone=vip.tz.key,
    )
    for s, e in gaps:
        hours = (e - s).total_seconds() / 3600
        out.gaps.append(rota_pb2.RotaGap(
            start_time=ts(s), end_time=ts(e), hours=hours,
            local_start=s.astimezone(vip.tz).isoformat(),
            local_end=e.astimezone(vip.tz).isoformat(),
        ))
        out.uncovered_hours += hours
    return out

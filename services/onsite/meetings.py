"""Exchange meetings (客户交流会): weekly schedule, registrations with a waiting list,
attendance."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, time, timedelta

from branch.directory.v1 import client_pb2, staff_pb2
from branch.onsite.v1 import events_pb2, meeting_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    Field,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit
from services.common.fields import check_text
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.onsite import convert
from services.onsite.core import (
    Onsite,
    check_ids,
    dumps,
    is_branch_wide,
    is_unset,
    read_time,
    token_int,
    token_time,
)
from services.onsite.models import MeetingRow, RegistrationRow, SeriesRow

SCHEDULED = meeting_pb2.MEETING_STATE_SCHEDULED
HELD = meeting_pb2.MEETING_STATE_HELD
M_CANCELLED = meeting_pb2.MEETING_STATE_CANCELLED
CONFIRMED = meeting_pb2.REGISTRATION_STATUS_CONFIRMED
WAITLISTED = meeting_pb2.REGISTRATION_STATUS_WAITLISTED
R_CANCELLED = meeting_pb2.REGISTRATION_STATUS_CANCELLED
FORMATS = (meeting_pb2.MEETING_FORMAT_IN_PERSON, meeting_pb2.MEETING_FORMAT_ONLINE)
PRESENTERS = (meeting_pb2.PRESENTER_KIND_UNSPECIFIED, meeting_pb2.PRESENTER_KIND_ANALYST,
              meeting_pb2.PRESENTER_KIND_CLIENT)
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_WEEKS = 26
# How far ahead a meeting may be put in the calendar (a bound well inside datetime's range).
SCHEDULE_AHEAD = timedelta(days=100 * 366)
# Attendance may be taken from shortly before the start.
ATTENDANCE_OPENS = timedelta(minutes=30)


def _check_shape(v: Violations, prefix: str, fmt: int, room: str, duration: int,
                 capacity: int) -> None:
    v.check(fmt in FORMATS, f"{prefix}.format", "IN_PERSON or ONLINE")
    if fmt == meeting_pb2.MEETING_FORMAT_IN_PERSON and not room.strip():
        v.add(f"{prefix}.room", "required for an in-person meeting")
    check_text(v, f"{prefix}.room", room, 100)
    v.check(15 <= duration <= 480, f"{prefix}.duration_minutes", "15 to 480")
    v.check(1 <= capacity <= 1000, f"{prefix}.capacity", "1 to 1000")


def _check_presenter(v: Violations, prefix: str, kind: int, presenter_id: str) -> None:
    v.check(kind in PRESENTERS, f"{prefix}presenter_kind", "ANALYST or CLIENT")
    if kind and not presenter_id:
        v.add(f"{prefix}presenter_id", "required with a presenter kind")
    if presenter_id and not kind:
        v.add(f"{prefix}presenter_kind", "required with a presenter id")
    v.check(len(presenter_id) <= 100, f"{prefix}presenter_id", "at most 100 characters")


async def verify_presenter(o: Onsite, prefix: str, kind: int, presenter_id: str) -> None:
    """The presenter is an active analyst, or a client of the branch who shares."""
    field = f"{prefix}presenter_id"
    if kind == meeting_pb2.PRESENTER_KIND_ANALYST:
        staff = await o.directory.get_staff(presenter_id)
        if staff is None or not staff.active or staff_pb2.ROLE_ANALYST not in staff.roles:
            raise InvalidArgument({field: "not an active analyst"})
    elif kind == meeting_pb2.PRESENTER_KIND_CLIENT:
        try:
            client = await o.directory.get_client(presenter_id)
        except NotFound:
            raise InvalidArgument({field: "not a client the directory knows"}) from None
        if client.status == client_pb2.CLIENT_STATUS_CLOSED:
            raise InvalidArgument({field: "the client has left the branch"})


async def _counts(s: AsyncSession, meeting_ids: list[str]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {m: Counter() for m in meeting_ids}
    if not meeting_ids:
        return out
    rows = (await s.exec(
        select(RegistrationRow.meeting_id, RegistrationRow.status, RegistrationRow.attended,
               func.count()).where(col(RegistrationRow.meeting_id).in_(meeting_ids))
        .group_by(col(RegistrationRow.meeting_id), col(RegistrationRow.status),
                  col(RegistrationRow.attended))
    )).all()
    for mid, status, attended, n in rows:
        c = out[mid]
        if status == CONFIRMED:
            c["confirmed"] += n
        elif status == WAITLISTED:
            c["waitlisted"] += n
        if attended:
            c["attended"] += n
    return out


async def _meeting_out(s: AsyncSession, row: MeetingRow) -> meeting_pb2.Meeting:
    c = (await _counts(s, [row.id]))[row.id]
    return convert.meeting_to_proto(row, c["confirmed"], c["waitlisted"], c["attended"])


def _new_meeting(o: Onsite, p: Principal, *, series_id: str, topic: str, kind: int,
                 presenter_id: str, fmt: int, room: str, start: datetime, duration: int,
                 capacity: int, note_ids: list[str]) -> MeetingRow:
    return MeetingRow(
        id=new_id(), series_id=series_id, topic=topic, presenter_kind=kind,
        presenter_id=presenter_id, format=fmt, room=room.strip(), start_time=start,
        duration_minutes=duration, capacity=capacity, note_ids=dumps(note_ids),
        state=SCHEDULED, created_by=p.staff_id, created_at=o.now(),
    )


def _scheduled_event(s: AsyncSession, o: Onsite, row: MeetingRow) -> None:
    emit(s, subject="branch.onsite.meeting.scheduled",
         message=events_pb2.MeetingScheduled(meeting=convert.meeting_to_proto(row)),
         about=row.id, now=o.now())


def validate_series(req: api.CreateMeetingSeriesRequest) -> None:
    v = Violations()
    msg = req.series
    check_text(v, "series.title", msg.title, 200, required=True)
    v.check(1 <= msg.weekday <= 7, "series.weekday", "1 (Monday) to 7 (Sunday)")
    v.check(bool(HHMM.match(msg.start_local_time)), "series.start_local_time", "HH:MM")
    _check_shape(v, "series", msg.format, msg.room, msg.duration_minutes, msg.capacity)
    v.check(0 <= req.weeks <= MAX_WEEKS, "weeks", "0 to {max_weeks}", max_weeks=MAX_WEEKS)
    check_text(v, "topic", req.topic, 200)
    _check_presenter(v, "", req.presenter_kind, req.presenter_id)
    v.raise_if_any()


async def create_series(s: AsyncSession, o: Onsite, p: Principal,
                        req: api.CreateMeetingSeriesRequest) -> api.CreateMeetingSeriesResponse:
    msg = req.series
    now = o.now()
    series = SeriesRow(
        id=new_id(), title=msg.title, weekday=msg.weekday,
        start_local_time=msg.start_local_time, duration_minutes=msg.duration_minutes,
        format=msg.format, room=msg.room.strip(), capacity=msg.capacity,
        created_by=p.staff_id, created_at=now,
    )
    s.add(series)
    hh, mm = (int(x) for x in msg.start_local_time.split(":"))
    day = o.today()
    while True:
        start = datetime.combine(day, time(hh, mm), tzinfo=o.tz)
        if day.isoweekday() == msg.weekday and start > now:
            break
        day += timedelta(days=1)
    meetings = []
    for week in range(req.weeks or 4):
        start = datetime.combine(day + timedelta(weeks=week), time(hh, mm), tzinfo=o.tz)
        row = _new_meeting(o, p, series_id=series.id, topic=req.topic or msg.title,
                           kind=req.presenter_kind, presenter_id=req.presenter_id,
                           fmt=msg.format, room=msg.room, start=start,
                           duration=msg.duration_minutes, capacity=msg.capacity, note_ids=[])
        s.add(row)
        _scheduled_event(s, o, row)
        meetings.append(convert.meeting_to_proto(row))
    return api.CreateMeetingSeriesResponse(series=convert.series_to_proto(series),
                                           meetings=meetings)


def validate_meeting(o: Onsite, p: Principal, msg: meeting_pb2.Meeting) -> datetime:
    v = Violations()
    check_text(v, "meeting.topic", msg.topic, 200, required=True)
    _check_presenter(v, "meeting.", msg.presenter_kind, msg.presenter_id)
    _check_shape(v, "meeting", msg.format, msg.room, msg.duration_minutes, msg.capacity)
    check_ids(v, "meeting.note_ids", list(msg.note_ids))
    start = read_time(v, "meeting.start_time", msg.start_time)
    now = o.now()
    if start is None:
        if is_unset(msg.start_time):
            v.add("meeting.start_time", "required")
    elif start > now + SCHEDULE_AHEAD:
        v.add("meeting.start_time", "at most 100 years ahead")
    elif start <= now and not p.has("admin"):
        v.add("meeting.start_time", "must be in the future")
    elif start < now - timedelta(days=60):
        v.add("meeting.start_time", "at most 60 days ago (admin backfill)")
    v.raise_if_any()
    assert start is not None
    return start


async def schedule(s: AsyncSession, o: Onsite, p: Principal, msg: meeting_pb2.Meeting,
                   start: datetime) -> meeting_pb2.Meeting:
    if msg.series_id and await s.get(SeriesRow, msg.series_id) is None:
        raise InvalidArgument({"meeting.series_id": "no such meeting series"})
    row = _new_meeting(o, p, series_id=msg.series_id, topic=msg.topic,
                       kind=msg.presenter_kind, presenter_id=msg.presenter_id, fmt=msg.format,
                       room=msg.room, start=start, duration=msg.duration_minutes,
                       capacity=msg.capacity, note_ids=list(msg.note_ids))
    s.add(row)
    _scheduled_event(s, o, row)
    return convert.meeting_to_proto(row)


async def _meeting(s: AsyncSession, meeting_id: str, field: str = "id", *,
                   lock: bool = False) -> MeetingRow:
    if not meeting_id:
        raise InvalidArgument({field: "required"})
    q = select(MeetingRow).where(col(MeetingRow.id) == meeting_id)
    if lock:
        q = q.with_for_update()
    row = (await s.exec(q)).first()
    if row is None:
        raise NotFound("meeting {meeting_id} not found", meeting_id=meeting_id)
    return row


UPDATABLE = {"topic", "presenter_kind", "presenter_id", "note_ids", "capacity", "state"}


async def update_meeting(o: Onsite, p: Principal,
                         req: api.UpdateMeetingRequest) -> meeting_pb2.Meeting:
    msg = req.meeting
    fields = set(req.update_mask.paths)
    v = Violations()
    if not fields:
        v.add("update_mask", "name the fields to change")
    for f in sorted(fields - UPDATABLE):
        v.add("update_mask", "{field} cannot be changed", field=Field(f))
    if "topic" in fields:
        check_text(v, "meeting.topic", msg.topic, 200, required=True)
    if fields & {"presenter_kind", "presenter_id"}:
        _check_presenter(v, "meeting.", msg.presenter_kind, msg.presenter_id)
    if "note_ids" in fields:
        check_ids(v, "meeting.note_ids", list(msg.note_ids))
    if "capacity" in fields:
        v.check(1 <= msg.capacity <= 1000, "meeting.capacity", "1 to 1000")
    if "state" in fields:
        v.check(msg.state == M_CANCELLED, "meeting.state", "only CANCELLED")
    v.raise_if_any()
    if fields & {"presenter_kind", "presenter_id"}:
        await verify_presenter(o, "meeting.", msg.presenter_kind, msg.presenter_id)
    async with o.db.transaction() as s:
        row = await _meeting(s, msg.id, "meeting.id", lock=True)
        if not (is_branch_wide(p) or p.staff_id in (row.created_by, row.presenter_id)):
            raise PermissionDenied("only the meeting's organiser, its presenter or a supervisor "
                                   "may change it", reason="NOT_MEETING_ORGANISER")
        if row.state != SCHEDULED:
            raise FailedPrecondition("only a scheduled meeting can be changed",
                                     reason="MEETING_NOT_SCHEDULED")
        if "topic" in fields:
            row.topic = msg.topic
        if fields & {"presenter_kind", "presenter_id"}:
            row.presenter_kind, row.presenter_id = msg.presenter_kind, msg.presenter_id
        if "note_ids" in fields:
            row.note_ids = dumps(list(msg.note_ids))
        if "state" in fields:
            row.state = M_CANCELLED
        if "capacity" in fields:
            confirmed = (await _counts(s, [row.id]))[row.id]["confirmed"]
            if msg.capacity < confirmed:
                raise FailedPrecondition(
                    "{confirmed} clients are confirmed; cancel registrations first",
                    confirmed=confirmed,
                    reason="CAPACITY_BELOW_CONFIRMED")
            row.capacity = msg.capacity
            await _promote(s, o, row)
        s.add(row)
        await s.flush()
        return await _meeting_out(s, row)


async def get_meeting(o: Onsite, meeting_id: str) -> meeting_pb2.Meeting:
    async with o.db.read() as s:
        return await _meeting_out(s, await _meeting(s, meeting_id))


async def list_meetings(o: Onsite, req: api.ListMeetingsRequest) -> api.ListMeetingsResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token, 2)
    v = Violations()
    lo, hi = read_time(v, "start_time", req.start_time), read_time(v, "end_time", req.end_time)
    v.raise_if_any()
    if lo and hi and hi <= lo:
        raise InvalidArgument({"end_time": "must be after start_time"})
    q = select(MeetingRow).order_by(col(MeetingRow.start_time), col(MeetingRow.id)).limit(size + 1)
    if lo:
        q = q.where(col(MeetingRow.start_time) >= lo)
    if hi:
        q = q.where(col(MeetingRow.start_time) < hi)
    if req.series_id:
        q = q.where(col(MeetingRow.series_id) == req.series_id)
    if after:
        t = token_time(after)
        q = q.where((col(MeetingRow.start_time) > t)
                    | ((col(MeetingRow.start_time) == t) & (col(MeetingRow.id) > str(after[1]))))
    async with o.db.read() as s:
        rows = list((await s.exec(q)).all())
        more = len(rows) > size
        rows = rows[:size]
        counts = await _counts(s, [r.id for r in rows])
    return api.ListMeetingsResponse(
        meetings=[convert.meeting_to_proto(r, counts[r.id]["confirmed"],
                                           counts[r.id]["waitlisted"], counts[r.id]["attended"])
                  for r in rows],
        next_page_token=encode_token(rows[-1].start_time.isoformat(), rows[-1].id) if more else "",
    )


# ---- registrations -------------------------------------------------------------------------

async def check_registrant(o: Onsite, p: Principal, req: api.RegisterForMeetingRequest) -> None:
    v = Violations()
    v.check(bool(req.meeting_id), "meeting_id", "required")
    v.check(bool(req.client_id), "client_id", "required")
    v.raise_if_any()
    client = await o.directory.get_client(req.client_id)
    if client.status == client_pb2.CLIENT_STATUS_CLOSED:
        raise FailedPrecondition("client {client_id} has left the branch", client_id=req.client_id,
                                 reason="CLIENT_CLOSED")
    if is_branch_wide(p) or p.has("consultant", "service_agent", "analyst"):
        return
    if p.has("client_manager") and client.client_manager_id == p.staff_id:
        return
    if p.has("broker") and client.broker_id == p.staff_id:
        return
    raise PermissionDenied("client {client_id} is not assigned to you", client_id=req.client_id,
                           reason="OUT_OF_SCOPE")


async def register(s: AsyncSession, o: Onsite, p: Principal,
                   req: api.RegisterForMeetingRequest) -> meeting_pb2.Registration:
    meeting = await _meeting(s, req.meeting_id, "meeting_id", lock=True)
    if meeting.state != SCHEDULED:
        raise FailedPrecondition("the meeting is not open for registration",
                                 reason="MEETING_NOT_SCHEDULED")
    if meeting.start_time <= o.now() and not p.has("admin"):
        raise FailedPrecondition("the meeting has started", reason="MEETING_STARTED")
    regs = list((await s.exec(select(RegistrationRow).where(
        col(RegistrationRow.meeting_id) == meeting.id))).all())
    if any(r.client_id == req.client_id and r.status != R_CANCELLED for r in regs):
        raise AlreadyExists("client {client_id} is already registered", client_id=req.client_id)
    confirmed = sum(1 for r in regs if r.status == CONFIRMED)
    status = CONFIRMED if confirmed < meeting.capacity else WAITLISTED
    row = RegistrationRow(
        id=new_id(), meeting_id=meeting.id, client_id=req.client_id, status=status,
        seq=max((r.seq for r in regs), default=0) + 1, registered_by=p.staff_id,
        registered_at=o.now(),
    )
    s.add(row)
    position = sum(1 for r in regs if r.status == WAITLISTED) + 1 if status == WAITLISTED else 0
    return convert.registration_to_proto(row, position)


async def _promote(s: AsyncSession, o: Onsite, meeting: MeetingRow) -> None:
    """Fill the meeting's free places from the waiting list, first come first served.

    The caller holds the meeting's row lock, so the count and the promotions see every
    committed cancellation and no other writer promotes the same people meanwhile; counting
    the free places (instead of trusting the caller's "one place freed") keeps the list right
    even if an earlier promotion was missed.
    """
    await s.flush()
    free = meeting.capacity - (await _counts(s, [meeting.id]))[meeting.id]["confirmed"]
    if free <= 0:
        return
    waiting = (await s.exec(select(RegistrationRow).where(
        col(RegistrationRow.meeting_id) == meeting.id, col(RegistrationRow.status) == WAITLISTED,
    ).order_by(col(RegistrationRow.seq)).limit(free).execution_options(
        populate_existing=True))).all()
    for r in waiting:
        r.status = CONFIRMED
        r.promoted_at = o.now()
        s.add(r)


async def cancel_registration(o: Onsite, p: Principal,
                              req: api.CancelRegistrationRequest) -> meeting_pb2.Registration:
    v = Violations()
    v.check(bool(req.id), "id", "required")
    check_text(v, "reason", req.reason, 500)
    v.raise_if_any()
    async with o.db.read() as s:
        found = await s.get(RegistrationRow, req.id)
    if found is None:
        raise NotFound("registration {id} not found", id=req.id)
    if found.registered_by != p.staff_id:
        # the same people who may register this client may cancel for them
        await check_registrant(o, p, api.RegisterForMeetingRequest(
            meeting_id=found.meeting_id, client_id=found.client_id))
    async with o.db.transaction() as s:
        row = await s.get(RegistrationRow, req.id)
        if row is None:
            raise NotFound("registration {id} not found", id=req.id)
        meeting = await _meeting(s, row.meeting_id, lock=True)
        await s.refresh(row)  # as it is now that the meeting is locked
        if meeting.state != SCHEDULED:
            raise FailedPrecondition("the meeting is no longer scheduled",
                                     reason="MEETING_NOT_SCHEDULED")
        if row.status == R_CANCELLED:
            raise FailedPrecondition("the registration is already cancelled",
                                     reason="REGISTRATION_CANCELLED")
        was_confirmed = row.status == CONFIRMED
        row.status = R_CANCELLED
        row.cancelled_at = o.now()
        row.cancel_reason = req.reason
        s.add(row)
        if was_confirmed:
            await _promote(s, o, meeting)
        return convert.registration_to_proto(row)


async def list_registrations(o: Onsite,
                             req: api.ListRegistrationsRequest) -> api.ListRegistrationsResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token)
    after_seq = token_int(after) if after else None
    async with o.db.read() as s:
        await _meeting(s, req.meeting_id, "meeting_id")
        rows = list((await s.exec(select(RegistrationRow).where(
            col(RegistrationRow.meeting_id) == req.meeting_id).order_by(
            col(RegistrationRow.seq)))).all())
    out, position = [], 0
    for r in rows:
        position += r.status == WAITLISTED
        out.append((r, position if r.status == WAITLISTED else 0))
    if after_seq is not None:
        out = [x for x in out if x[0].seq > after_seq]
    more = len(out) > size
    out = out[:size]
    return api.ListRegistrationsResponse(
        registrations=[convert.registration_to_proto(r, pos) for r, pos in out],
        next_page_token=encode_token(out[-1][0].seq) if more else "",
    )


async def record_attendance(o: Onsite, p: Principal,
                            req: api.RecordAttendanceRequest) -> meeting_pb2.Meeting:
    v = Violations()
    v.check(bool(req.meeting_id), "meeting_id", "required")
    v.check(len(set(req.client_ids)) == len(req.client_ids), "client_ids", "must not repeat")
    v.raise_if_any()
    now = o.now()
    async with o.db.transaction() as s:
        meeting = await _meeting(s, req.meeting_id, "meeting_id", lock=True)
        if meeting.state != SCHEDULED:
            raise FailedPrecondition("attendance was already taken or the meeting cancelled",
                                     reason="MEETING_NOT_SCHEDULED")
        if now < meeting.start_time - ATTENDANCE_OPENS:
            raise FailedPrecondition("the meeting has not started", reason="MEETING_NOT_STARTED")
        regs = {r.client_id: r for r in (await s.exec(select(RegistrationRow).where(
            col(RegistrationRow.meeting_id) == meeting.id,
            col(RegistrationRow.status) == CONFIRMED))).all()}
        for n, cid in enumerate(req.client_ids):
            if cid not in regs:
                v.add(f"client_ids[{n}]", "no confirmed registration for this client")
        v.raise_if_any()
        for cid in req.client_ids:
            regs[cid].attended = True
            s.add(regs[cid])
        meeting.state = HELD
        meeting.held_at = now
        s.add(meeting)
        await s.flush()
        out = await _meeting_out(s, meeting)
        emit(s, subject="branch.onsite.meeting.held",
             message=events_pb2.MeetingHeld(meeting=out, attended_client_ids=list(req.client_ids)),
             about=meeting.id, now=now)
        return out


async def release_registrations(s: AsyncSession, o: Onsite, client_id: str) -> int:
    """A client who left the branch gives up their places in meetings still to come; the
    waiting lists move up. Each meeting is locked first, as CancelRegistration does, so a
    cancellation running at the same time cannot promote the same waiting client twice."""
    meeting_ids = sorted(set((await s.exec(
        select(RegistrationRow.meeting_id).join(
            MeetingRow, col(MeetingRow.id) == col(RegistrationRow.meeting_id)).where(
            col(RegistrationRow.client_id) == client_id,
            col(RegistrationRow.status).in_([CONFIRMED, WAITLISTED]),
            col(MeetingRow.state) == SCHEDULED, col(MeetingRow.start_time) > o.now()))).all()))
    released = 0
    for meeting_id in meeting_ids:
        meeting = await _meeting(s, meeting_id, lock=True)
        await s.refresh(meeting)  # as it is now that it is locked
        if meeting.state != SCHEDULED:
            continue
        regs = (await s.exec(select(RegistrationRow).where(
            col(RegistrationRow.meeting_id) == meeting_id,
            col(RegistrationRow.client_id) == client_id,
            col(RegistrationRow.status).in_([CONFIRMED, WAITLISTED])).execution_options(
            populate_existing=True))).all()
        for reg in regs:
            reg.status = R_CANCELLED
            reg.cancelled_at = o.now()
            reg.cancel_reason = "client left the branch"
            s.add(reg)
            released += 1
        if regs:
            await _promote(s, o, meeting)
    return released

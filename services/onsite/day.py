"""A client manager's day: plans, visits, patrols, quotas and compliance."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

from branch.directory.v1 import client_pb2
from branch.onsite.v1 import day_pb2, events_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import ROLES, Principal
from services.common.calendar import BranchCalendar
from services.common.clock import week_of
from services.common.errors import FailedPrecondition, PermissionDenied, Violations
from services.common.events import emit
from services.common.fields import check_date, check_text
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.upsert import upsert
from services.onsite import convert
from services.onsite.core import (
    BACKFILL_WINDOW,
    Onsite,
    acting_for,
    dumps,
    is_branch_wide,
    loads,
    past_time,
    staff_scope,
    token_int,
    token_time,
)
from services.onsite.models import (
    CONSULT,
    VISIT,
    FormRow,
    PatrolRow,
    PlanItemRow,
    PlanRow,
    QuotaRow,
    VisitRow,
)

DEFAULT_VISITS_PER_DAY = 10
DEFAULT_ROOMS_PER_DAY = 3
PLAN_AHEAD = timedelta(days=31)
# onsite_plan.rooms and onsite_visit.topics hold a JSON list in a VARCHAR(2000): the items'
# own limits allow more than fits once quoted, which PostgreSQL refused as INTERNAL.
JSON_COLUMN_MAX = 2000


async def onsite_client(o: Onsite, p: Principal, client_id: str,
                        manager_id: str) -> client_pb2.Client:
    """The client, if the directory knows them, they are on-site and active, and (unless the
    caller is a supervisor) assigned to this manager."""
    client = await o.directory.get_client(client_id)
    if client.status == client_pb2.CLIENT_STATUS_CLOSED:
        raise FailedPrecondition("client {client_id} has left the branch", client_id=client_id,
                                 reason="CLIENT_CLOSED")
    if client.channel != client_pb2.CHANNEL_ONSITE:
        raise FailedPrecondition("client {client_id} is not an on-site client", client_id=client_id,
                                 reason="CLIENT_NOT_ONSITE")
    if not is_branch_wide(p) and client.client_manager_id != manager_id:
        raise PermissionDenied("client {client_id} is not assigned to you", client_id=client_id,
                               reason="OUT_OF_SCOPE")
    return client


# ---- plans -------------------------------------------------------------------------------

async def set_plan(o: Onsite, p: Principal, req: api.SetDailyPlanRequest) -> day_pb2.DailyPlan:
    staff_scope(p, req.client_manager_id)
    v = Violations()
    day = check_date(v, "plan_date", req.plan_date)
    if day is not None:
        today = o.today()
        v.check(day >= today - timedelta(days=BACKFILL_WINDOW.days), "plan_date",
                "at most {days} days ago", days=BACKFILL_WINDOW.days)
        v.check(day <= today + PLAN_AHEAD, "plan_date", "at most {days} days ahead",
                days=PLAN_AHEAD.days)
    for field, items in (("visits", req.visits), ("consultation_targets",
                                                  req.consultation_targets)):
        if len(items) > 50:
            v.add(field, "at most 50")
        ids = [i.client_id for i in items]
        if len(set(ids)) != len(ids):
            v.add(field, "a client appears twice")
        for n, item in enumerate(items):
            if not item.client_id:
                v.add(f"{field}[{n}].client_id", "required")
            check_text(v, f"{field}[{n}].reason", item.reason, 500)
    if len(req.rooms) > 20:
        v.add("rooms", "at most 20")
    if len(set(req.rooms)) != len(req.rooms):
        v.add("rooms", "a room appears twice")
    for n, room in enumerate(req.rooms):
        check_text(v, f"rooms[{n}]", room, 100, required=True)
    if len(dumps(list(req.rooms))) > JSON_COLUMN_MAX:
        v.add("rooms", "too long in all")
    check_text(v, "note", req.note, 2000)
    v.raise_if_any()
    assert day is not None
    manager = await acting_for(o, p, req.client_manager_id, "client_manager_id")
    await asyncio.gather(*(onsite_client(o, p, cid, manager) for cid in sorted(
        {i.client_id for i in (*req.visits, *req.consultation_targets)})))
    now = o.now()

    async def write() -> day_pb2.DailyPlan:
        async with o.db.transaction() as s:
            # the day's plan row in one statement (two saves of a new day both inserted)
            await upsert(s, PlanRow, {
                "id": new_id(), "client_manager_id": manager, "plan_date": day,
                "rooms": dumps(list(req.rooms)), "note": req.note, "created_at": now,
                "updated_at": now}, key=["client_manager_id", "plan_date"],
                update=["rooms", "note", "updated_at"])
            row = (await s.exec(select(PlanRow).where(
                PlanRow.client_manager_id == manager, PlanRow.plan_date == day)
                .execution_options(populate_existing=True))).one()
            await s.exec(delete(PlanItemRow).where(
                col(PlanItemRow.plan_id) == row.id))
            items = []
            for kind, planned in ((VISIT, req.visits), (CONSULT, req.consultation_targets)):
                for n, item in enumerate(planned):
                    items.append(PlanItemRow(plan_id=row.id, plan_date=day, kind=kind,
                                             position=n, client_id=item.client_id,
                                             reason=item.reason))
            s.add_all(items)
            return convert.plan_to_proto(row, items)

    return await write()


async def get_plan(o: Onsite, p: Principal, req: api.GetDailyPlanRequest) -> day_pb2.DailyPlan:
    manager = staff_scope(p, req.client_manager_id)
    v = Violations()
    day = check_date(v, "plan_date", req.plan_date, required=False) or o.today()
    v.raise_if_any()
    async with o.db.read() as s:
        row = (await s.exec(select(PlanRow).where(
            PlanRow.client_manager_id == manager, PlanRow.plan_date == day))).first()
        if row is None:
            return day_pb2.DailyPlan(client_manager_id=manager, plan_date=day.isoformat())
        items = list((await s.exec(select(PlanItemRow).where(
            PlanItemRow.plan_id == row.id))).all())
    return convert.plan_to_proto(row, items)


# ---- visits and patrols --------------------------------------------------------------------

def _validate_visit(o: Onsite, v: Violations, msg: day_pb2.Visit) -> datetime:
    v.check(bool(msg.client_id), "visit.client_id", "required")
    when = past_time(o, v, "visit.visit_time", msg.visit_time)
    check_text(v, "visit.room", msg.room, 100)
    if len(msg.topics) > 20:
        v.add("visit.topics", "at most 20")
    for n, topic in enumerate(msg.topics):
        check_text(v, f"visit.topics[{n}]", topic, 200, required=True)
    if len(dumps(list(msg.topics))) > JSON_COLUMN_MAX:
        v.add("visit.topics", "too long in all")
    check_text(v, "visit.client_requests", msg.client_requests, 2000)
    check_text(v, "visit.follow_up_note", msg.follow_up_note, 2000)
    if msg.follow_up_note and not msg.follow_up_needed:
        v.add("visit.follow_up_needed", "set it when giving a follow-up note")
    return when


async def prepare_visit(o: Onsite, p: Principal, msg: day_pb2.Visit) -> tuple[str, datetime]:
    """Everything checked before the write: fields, the directory, the scope."""
    staff_scope(p, msg.client_manager_id, "visit.client_manager_id")
    v = Violations()
    when = _validate_visit(o, v, msg)
    v.raise_if_any()
    manager = await acting_for(o, p, msg.client_manager_id, "visit.client_manager_id")
    await onsite_client(o, p, msg.client_id, manager)
    return manager, when


async def record_visit(s: AsyncSession, o: Onsite, p: Principal, msg: day_pb2.Visit,
                       manager: str, when: datetime) -> day_pb2.Visit:
    now = o.now()
    row = VisitRow(
        id=new_id(), client_manager_id=manager, client_id=msg.client_id, visit_time=when,
        visit_date=o.local_date(when), room=msg.room, topics=dumps(list(msg.topics)),
        client_requests=msg.client_requests, follow_up_needed=msg.follow_up_needed,
        follow_up_note=msg.follow_up_note, recorded_by=p.staff_id, created_at=now,
    )
    s.add(row)
    out = convert.visit_to_proto(row)
    emit(s, subject="branch.onsite.visit.recorded", message=events_pb2.VisitRecorded(visit=out),
         about=row.id, now=now)
    return out


async def prepare_patrol(o: Onsite, p: Principal,
                         msg: day_pb2.Patrol) -> tuple[str, datetime]:
    staff_scope(p, msg.client_manager_id, "patrol.client_manager_id")
    v = Violations()
    check_text(v, "patrol.room", msg.room, 100, required=True)
    when = past_time(o, v, "patrol.patrol_time", msg.patrol_time)
    check_text(v, "patrol.observations", msg.observations, 2000)
    v.raise_if_any()
    manager = await acting_for(o, p, msg.client_manager_id, "patrol.client_manager_id")
    return manager, when


async def record_patrol(s: AsyncSession, o: Onsite, p: Principal, msg: day_pb2.Patrol,
                        manager: str, when: datetime) -> day_pb2.Patrol:
    now = o.now()
    row = PatrolRow(
        id=new_id(), client_manager_id=manager, room=msg.room.strip(), patrol_time=when,
        patrol_date=o.local_date(when), observations=msg.observations,
        recorded_by=p.staff_id, created_at=now,
    )
    s.add(row)
    out = convert.patrol_to_proto(row)
    emit(s, subject="branch.onsite.patrol.recorded",
         message=events_pb2.PatrolRecorded(patrol=out), about=row.id, now=now)
    return out


def _date_range(v: Violations, start: str, end: str) -> tuple[date | None, date | None]:
    lo = check_date(v, "start_date", start, required=False)
    hi = check_date(v, "end_date", end, required=False)
    if lo and hi and hi < lo:
        v.add("end_date", "must not be before start_date")
    return lo, hi


def _list_scope(p: Principal, requested: str) -> str:
    """'' (everyone) for supervisors unless they ask for one manager; else the caller."""
    if is_branch_wide(p):
        return requested
    return staff_scope(p, requested)


async def list_visits(o: Onsite, p: Principal,
                      req: api.ListVisitsRequest) -> api.ListVisitsResponse:
    manager = _list_scope(p, req.client_manager_id)
    size = page_size(req.page_size)
    v = Violations()
    lo, hi = _date_range(v, req.start_date, req.end_date)
    v.raise_if_any()
    after = decode_token(req.page_token, 2)
    q = select(VisitRow).order_by(col(VisitRow.visit_time), col(VisitRow.id)).limit(size + 1)
    if manager:
        q = q.where(VisitRow.client_manager_id == manager)
    if req.client_id:
        q = q.where(VisitRow.client_id == req.client_id)
    if lo:
        q = q.where(col(VisitRow.visit_date) >= lo)
    if hi:
        q = q.where(col(VisitRow.visit_date) <= hi)
    if after:
        t = token_time(after)
        q = q.where((col(VisitRow.visit_time) > t)
                    | ((col(VisitRow.visit_time) == t) & (col(VisitRow.id) > str(after[1]))))
    async with o.db.read() as s:
        rows = list((await s.exec(q)).all())
    more = len(rows) > size
    rows = rows[:size]
    return api.ListVisitsResponse(
        visits=[convert.visit_to_proto(r) for r in rows],
        next_page_token=encode_token(rows[-1].visit_time.isoformat(), rows[-1].id) if more else "",
    )


async def list_patrols(o: Onsite, p: Principal,
                       req: api.ListPatrolsRequest) -> api.ListPatrolsResponse:
    manager = _list_scope(p, req.client_manager_id)
    size = page_size(req.page_size)
    v = Violations()
    lo, hi = _date_range(v, req.start_date, req.end_date)
    v.raise_if_any()
    after = decode_token(req.page_token, 2)
    q = select(PatrolRow).order_by(col(PatrolRow.patrol_time), col(PatrolRow.id)).limit(size + 1)
    if manager:
        q = q.where(PatrolRow.client_manager_id == manager)
    if lo:
        q = q.where(col(PatrolRow.patrol_date) >= lo)
    if hi:
        q = q.where(col(PatrolRow.patrol_date) <= hi)
    if after:
        t = token_time(after)
        q = q.where((col(PatrolRow.patrol_time) > t)
                    | ((col(PatrolRow.patrol_time) == t) & (col(PatrolRow.id) > str(after[1]))))
    async with o.db.read() as s:
        rows = list((await s.exec(q)).all())
    more = len(rows) > size
    rows = rows[:size]
    return api.ListPatrolsResponse(
        patrols=[convert.patrol_to_proto(r) for r in rows],
        next_page_token=(encode_token(rows[-1].patrol_time.isoformat(), rows[-1].id)
                         if more else ""),
    )


# ---- quotas and compliance -----------------------------------------------------------------

async def set_quota(o: Onsite, p: Principal, msg: day_pb2.Quota) -> day_pb2.Quota:
    v = Violations()
    v.check(msg.role in ROLES, "quota.role", "a staff role, e.g. client_manager")
    v.check(len(msg.staff_id) <= 100, "quota.staff_id", "at most 100 characters")
    v.check(0 <= msg.visits_per_day <= 200, "quota.visits_per_day", "0 to 200")
    v.check(0 <= msg.rooms_per_day <= 100, "quota.rooms_per_day", "0 to 100")
    v.raise_if_any()
    now = o.now()

    async def write() -> day_pb2.Quota:
        async with o.db.transaction() as s:
            values: dict[str, Any] = {"role": msg.role, "staff_id": msg.staff_id,
                      "visits_per_day": msg.visits_per_day, "rooms_per_day": msg.rooms_per_day,
                      "updated_by": p.staff_id, "updated_at": now}
            await upsert(s, QuotaRow, values, key=["role", "staff_id"])
            return convert.quota_to_proto(QuotaRow(**values))

    return await write()


async def list_quotas(o: Onsite, req: api.ListQuotasRequest) -> api.ListQuotasResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token)
    q = select(QuotaRow).order_by(col(QuotaRow.id)).limit(size + 1)
    if after:
        q = q.where(col(QuotaRow.id) > token_int(after))
    async with o.db.read() as s:
        rows = list((await s.exec(q)).all())
    more = len(rows) > size
    rows = rows[:size]
    return api.ListQuotasResponse(
        quotas=[convert.quota_to_proto(r) for r in rows],
        next_page_token=encode_token(rows[-1].id) if more else "",
        default_visits_per_day=DEFAULT_VISITS_PER_DAY,
        default_rooms_per_day=DEFAULT_ROOMS_PER_DAY,
    )


async def quota_for(s: AsyncSession, staff_id: str,
                    role: str = "client_manager") -> tuple[int, int]:
    rows = (await s.exec(select(QuotaRow).where(
        QuotaRow.role == role, col(QuotaRow.staff_id).in_([staff_id, ""])))).all()
    by_staff = {r.staff_id: r for r in rows}
    row = by_staff.get(staff_id) or by_staff.get("")
    if row is None:
        return DEFAULT_VISITS_PER_DAY, DEFAULT_ROOMS_PER_DAY
    return row.visits_per_day, row.rooms_per_day


def period_bounds(period: int, day: date, cal: BranchCalendar) -> tuple[date, date, int]:
    """First and last date of the period and the working days its quota counts: the week's
    working days in the branch's calendar (the 2024 National Day week counts 1, a week with a
    make-up Saturday 6); a single day counts 1, as the day's own quota."""
    if period == day_pb2.PERIOD_WEEK:
        start, end = week_of(day)
        return start, end, cal.working_days(start, end)
    return day, day, 1


async def compliance(o: Onsite, p: Principal,
                     req: api.GetComplianceRequest) -> api.GetComplianceResponse:
    v = Violations()
    day = check_date(v, "date", req.date, required=False) or o.today()
    v.check(req.period in (day_pb2.PERIOD_UNSPECIFIED, day_pb2.PERIOD_DAY, day_pb2.PERIOD_WEEK),
            "period", "DAY or WEEK")
    v.raise_if_any()
    start, end, days = period_bounds(req.period or day_pb2.PERIOD_DAY, day, o.calendar)
    requested = _list_scope(p, req.client_manager_id)
    lo, hi = o.day_start(start), o.day_start(end + timedelta(days=1))
    now = o.now()
    async with o.db.read() as s:
        if requested:
            managers = [requested]
        else:
            found: set[str] = set()
            for column, date_col, table in (
                (PlanRow.client_manager_id, PlanRow.plan_date, PlanRow),
                (VisitRow.client_manager_id, VisitRow.visit_date, VisitRow),
                (PatrolRow.client_manager_id, PatrolRow.patrol_date, PatrolRow),
            ):
                found.update((await s.exec(
                    select(column).select_from(table).where(
                        col(date_col) >= start, col(date_col) <= end).distinct()
                )).all())
            managers = sorted(found)
        rows = []
        for manager in managers:
            items = list((await s.exec(select(PlanItemRow).join(
                PlanRow, col(PlanRow.id) == col(PlanItemRow.plan_id)).where(
                PlanRow.client_manager_id == manager, col(PlanRow.plan_date) >= start,
                col(PlanRow.plan_date) <= end, PlanItemRow.dropped == 0))).all())
            rooms_planned = sum(len(loads(r)) for r in (await s.exec(select(PlanRow.rooms).where(
                PlanRow.client_manager_id == manager, col(PlanRow.plan_date) >= start,
                col(PlanRow.plan_date) <= end))).all())
            visits = list((await s.exec(select(
                    col(VisitRow.client_id), col(VisitRow.visit_date)).where(
                VisitRow.client_manager_id == manager, col(VisitRow.visit_date) >= start,
                col(VisitRow.visit_date) <= end))).all())
            patrolled = (await s.exec(select(col(PatrolRow.patrol_date), col(PatrolRow.room)).where(
                PatrolRow.client_manager_id == manager, col(PatrolRow.patrol_date) >= start,
                col(PatrolRow.patrol_date) <= end).distinct())).all()
            raised = (await s.exec(select(func.count()).select_from(FormRow).where(
                FormRow.client_manager_id == manager, col(FormRow.raised_at) >= lo,
                col(FormRow.raised_at) < hi))).one()
            due = (await s.exec(select(FormRow).where(
                FormRow.client_manager_id == manager, col(FormRow.deadline) >= lo,
                col(FormRow.deadline) < hi))).all()
            visits_quota, rooms_quota = await quota_for(s, manager)
            done = {(cid, d) for cid, d in visits}
            planned_visits = [i for i in items if i.kind == VISIT]
            row = day_pb2.ComplianceRow(
                client_manager_id=manager, start_date=start.isoformat(),
                end_date=end.isoformat(),
                planned_visits=len(planned_visits), visits_done=len(visits),
                planned_visits_done=sum(1 for i in planned_visits
                                        if (i.client_id, i.plan_date) in done),
                visits_quota=visits_quota * days, planned_rooms=rooms_planned,
                rooms_patrolled=len(patrolled), rooms_quota=rooms_quota * days,
                consultation_targets=sum(1 for i in items if i.kind == CONSULT),
                forms_raised=int(raised),
                forms_overdue=sum(1 for f in due if convert.is_overdue(f, now)),
            )
            row.visits_met = row.visits_done >= row.visits_quota
            row.rooms_met = row.rooms_patrolled >= row.rooms_quota
            row.met = row.visits_met and row.rooms_met
            rows.append(row)
    return api.GetComplianceResponse(rows=rows)

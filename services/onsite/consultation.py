"""Consultation forms (咨询表): raise with a holdings snapshot, analyse with the suitability
rule, deliver by the deadline or cancel; the overdue check that raises each event once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from branch.directory.v1 import client_pb2, staff_pb2
from branch.onsite.v1 import consultation_pb2, events_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import suitability
from services.common.auth import Principal
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    Msg,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit
from services.common.fields import check_date, check_text
from services.common.ids import looks_like_id, new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.common.upsert import upsert
from services.onsite import convert
from services.onsite.convert import OPEN_STATES
from services.onsite.core import (
    Onsite,
    backfill_time,
    check_ids,
    dumps,
    is_branch_wide,
    loads,
    token_time,
)
from services.onsite.day import onsite_client
from services.onsite.models import FormPositionRow, FormRow, OnsiteSettingsRow

DEFAULT_DEADLINE = timedelta(hours=24)
MIN_DEADLINE = timedelta(minutes=30)
MAX_DEADLINE = timedelta(days=14)
RAISED = consultation_pb2.FORM_STATE_RAISED
ANALYSED = consultation_pb2.FORM_STATE_ANALYSED
DELIVERED = consultation_pb2.FORM_STATE_DELIVERED
CANCELLED = consultation_pb2.FORM_STATE_CANCELLED
STATE_NAMES: dict[int, str] = {RAISED: Msg("raised"), ANALYSED: Msg("analysed"),
                               DELIVERED: Msg("delivered"), CANCELLED: Msg("cancelled")}

log = get_logger("onsite", component="consultation")


# ---- settings ------------------------------------------------------------------------------

async def settings_row(s: AsyncSession) -> OnsiteSettingsRow:
    row = await s.get(OnsiteSettingsRow, 1)
    if row is None:
        return OnsiteSettingsRow(id=1, delivery_deadline_seconds=int(
            DEFAULT_DEADLINE.total_seconds()), updated_by="", updated_at=None)  # type: ignore[arg-type]
    return row


async def get_settings(o: Onsite) -> api.OnsiteSettings:
    async with o.db.read() as s:
        return convert.settings_to_proto(await settings_row(s))


async def update_settings(o: Onsite, p: Principal, msg: api.OnsiteSettings) -> api.OnsiteSettings:
    seconds = msg.delivery_deadline.seconds
    if not (MIN_DEADLINE.total_seconds() <= seconds <= MAX_DEADLINE.total_seconds()):
        raise InvalidArgument({"settings.delivery_deadline": "between 30 minutes and 14 days"})

    async def write() -> api.OnsiteSettings:
        async with o.db.transaction() as s:
            values: dict[str, Any] = {"id": 1, "delivery_deadline_seconds": seconds,
                                      "updated_by": p.staff_id, "updated_at": o.now()}
            await upsert(s, OnsiteSettingsRow, values, key=["id"])
            return convert.settings_to_proto(OnsiteSettingsRow(**values))

    return await write()


# ---- reading -------------------------------------------------------------------------------

def _may_see(p: Principal, row: FormRow) -> bool:
    if is_branch_wide(p):
        return True
    return (p.has("consultant") and row.consultant_id == p.staff_id) or (
        p.has("client_manager") and row.client_manager_id == p.staff_id)


async def _load(s: AsyncSession, p: Principal, form_id: str, *, lock: bool = False) -> FormRow:
    if not form_id:
        raise InvalidArgument({"id": "required"})
    q = select(FormRow).where(FormRow.id == form_id)
    if lock:
        q = q.with_for_update()
    row = (await s.exec(q)).first()
    if row is None:
        raise NotFound("consultation form {form_id} not found", form_id=form_id)
    if not _may_see(p, row):
        raise PermissionDenied("this form is not yours", reason="OUT_OF_SCOPE")
    return row


async def _out(s: AsyncSession, o: Onsite, row: FormRow) -> consultation_pb2.ConsultationForm:
    positions = list((await s.exec(select(FormPositionRow).where(
        FormPositionRow.form_id == row.id))).all())
    return convert.form_to_proto(row, positions, o.now())


async def get_form(o: Onsite, p: Principal, form_id: str) -> consultation_pb2.ConsultationForm:
    async with o.db.read() as s:
        return await _out(s, o, await _load(s, p, form_id))


def _overdue_clause(now: datetime):  # type: ignore[no-untyped-def]
    return or_(
        col(FormRow.overdue_at).is_not(None),
        col(FormRow.state).in_(OPEN_STATES) & (col(FormRow.deadline) <= now),
        col(FormRow.delivered_at) > col(FormRow.deadline),
    )


async def list_forms(o: Onsite, p: Principal,
                     req: api.ListConsultationFormsRequest) -> api.ListConsultationFormsResponse:
    size = page_size(req.page_size)
    v = Violations()
    for n, state in enumerate(req.states):
        v.check(state in STATE_NAMES, f"states[{n}]", "unknown state")
    v.raise_if_any()
    after = decode_token(req.page_token, 2)
    now = o.now()
    q = select(FormRow).order_by(col(FormRow.deadline), col(FormRow.id)).limit(size + 1)
    if not is_branch_wide(p):
        own = []
        if p.has("consultant"):
            own.append(col(FormRow.consultant_id) == p.staff_id)
        if p.has("client_manager"):
            own.append(col(FormRow.client_manager_id) == p.staff_id)
        if req.consultant_id and req.consultant_id != p.staff_id and not p.has(
                "client_manager"):
            raise PermissionDenied("consultants see only the forms they keep",
                                   reason="OUT_OF_SCOPE")
        if req.client_manager_id and req.client_manager_id != p.staff_id and not p.has(
                "consultant"):
            raise PermissionDenied("client managers see only the forms they raised",
                                   reason="OUT_OF_SCOPE")
        q = q.where(or_(*own))
    if req.consultant_id:
        q = q.where(FormRow.consultant_id == req.consultant_id)
    if req.client_manager_id:
        q = q.where(FormRow.client_manager_id == req.client_manager_id)
    if req.client_id:
        q = q.where(FormRow.client_id == req.client_id)
    if req.states:
        q = q.where(col(FormRow.state).in_(list(req.states)))
    if req.overdue_only:
        q = q.where(_overdue_clause(now))
    if req.flagged_only:
        q = q.where(or_(_overdue_clause(now), col(FormRow.suitability_override).is_(True),
                        col(FormRow.client_flag) != 0))
    if after:
        t = token_time(after)
        q = q.where((col(FormRow.deadline) > t)
                    | ((col(FormRow.deadline) == t) & (col(FormRow.id) > str(after[1]))))
    async with o.db.read() as s:
        rows = list((await s.exec(q)).all())
        more = len(rows) > size
        rows = rows[:size]
        forms = [await _out(s, o, r) for r in rows]
    return api.ListConsultationFormsResponse(
        forms=forms,
        next_page_token=encode_token(rows[-1].deadline.isoformat(), rows[-1].id) if more else "",
    )


async def summarize_overdue(
    o: Onsite, req: api.SummarizeOverdueFormsRequest
) -> api.SummarizeOverdueFormsResponse:
    v = Violations()
    lo = check_date(v, "start_date", req.start_date, required=False)
    hi = check_date(v, "end_date", req.end_date, required=False)
    if lo and hi and hi < lo:
        v.add("end_date", "must not be before start_date")
    v.raise_if_any()
    now = o.now()
    q = select(FormRow).where(_overdue_clause(now))
    if lo:
        q = q.where(col(FormRow.deadline) >= o.day_start(lo))
    if hi:
        q = q.where(col(FormRow.deadline) < o.day_start(hi + timedelta(days=1)))
    async with o.db.read() as s:
        rows = list((await s.exec(q)).all())
    by_c: dict[str, list[int]] = {}
    by_m: dict[str, list[int]] = {}
    for r in rows:
        is_open = int(r.state in OPEN_STATES)
        for table, key in ((by_c, r.consultant_id), (by_m, r.client_manager_id)):
            counts = table.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += is_open
    def staff(table: dict[str, list[int]]) -> list[consultation_pb2.StaffOverdue]:
        return [consultation_pb2.StaffOverdue(staff_id=k, overdue=c[0], open=c[1])
                for k, c in sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return api.SummarizeOverdueFormsResponse(
        by_consultant=staff(by_c), by_client_manager=staff(by_m), overdue_total=len(rows),
        open_overdue=sum(1 for r in rows if r.state in OPEN_STATES),
    )


# ---- raising -------------------------------------------------------------------------------

def consultant_problem(typed: str, staff: staff_pb2.Staff | None) -> str:
    """Why `typed` cannot be the form's consultant, told apart: not an id at all (a name or
    employee number sent where the API takes an id), no such staff member, deactivated, or
    not a consultant."""
    if staff is None:
        return (Msg("no staff member has this id") if looks_like_id(typed) else
                Msg("not a staff id (an id is a UUID; branchctl takes an employee number or "
                    "name)"))
    if not staff.active:
        return Msg("this staff member is deactivated")
    return Msg("this staff member is not a consultant")


async def prepare_raise(o: Onsite, p: Principal, req: api.RaiseConsultationFormRequest):  # type: ignore[no-untyped-def]
    """Checks and directory look-ups done before the write (client, consultant, holdings)."""
    v = Violations()
    v.check(bool(req.client_id), "client_id", "required")
    v.check(bool(req.consultant_id), "consultant_id", "required")
    check_text(v, "request_note", req.request_note, 2000)
    when = backfill_time(o, p, v, req.backfill_time)
    v.raise_if_any()
    client = await onsite_client(o, p, req.client_id, p.staff_id)
    staff = await o.directory.get_staff(req.consultant_id)
    if staff is None or not staff.active or staff_pb2.ROLE_CONSULTANT not in staff.roles:
        raise InvalidArgument({"consultant_id": consultant_problem(req.consultant_id, staff)})
    holdings = await o.directory.list_holdings(req.client_id)
    manager = client.client_manager_id if is_branch_wide(p) and client.client_manager_id \
        else p.staff_id
    return manager, when, holdings


async def raise_form(s: AsyncSession, o: Onsite, req: api.RaiseConsultationFormRequest,
                     manager: str, when: datetime,
                     holdings: list) -> consultation_pb2.ConsultationForm:  # type: ignore[type-arg]
    settings = await settings_row(s)
    deadline = when + timedelta(seconds=settings.delivery_deadline_seconds)
    now = o.now()
    row = FormRow(
        id=new_id(), client_id=req.client_id, client_manager_id=manager,
        consultant_id=req.consultant_id, state=RAISED, request_note=req.request_note,
        raised_at=when, deadline=deadline, updated_at=now,
    )
    s.add(row)
    await s.flush()
    positions = [
        FormPositionRow(form_id=row.id, ticker=h.ticker, quantity=h.quantity,
                        cost_price=h.cost_price, market_price=h.market_price,
                        risk_level=h.risk_level, as_of=h.as_of)
        for h in holdings
    ]
    s.add_all(positions)
    emit(s, subject="branch.onsite.consultation.raised",
         message=events_pb2.ConsultationRaised(
             form_id=row.id, client_id=row.client_id, consultant_id=row.consultant_id,
             client_manager_id=manager, tickers=[h.ticker for h in holdings],
             deadline=ts(deadline)),
         about=row.id, now=now)
    return convert.form_to_proto(row, positions, now)


# ---- analysis, delivery, cancellation --------------------------------------------------------

def _ensure_open(row: FormRow, action: str) -> None:
    if row.state not in OPEN_STATES:
        raise FailedPrecondition(
            "cannot {action} a {state} form", action=action,
            state=STATE_NAMES.get(row.state, Msg("unknown")),
            reason=f"FORM_{STATE_NAMES.get(row.state, 'unknown').upper()}")


def suitability_problem(level: int, client: client_pb2.Client) -> str:
    """Why advice of this risk level may not go to this client, or '' when it may (the
    suite-wide rule, with the directory's view of the assessment's age)."""
    return suitability.suitability_problem(level, client.risk_tolerance,
                                           client.risk_assessment_expired)


async def analyse(o: Onsite, p: Principal,
                  req: api.AnalyseConsultationFormRequest) -> consultation_pb2.ConsultationForm:
    v = Violations()
    v.check(bool(req.id), "id", "required")
    check_text(v, "analysis", req.analysis, 10000, required=True)
    check_text(v, "advice", req.advice, 5000, required=True)
    v.check(1 <= req.advice_risk_level <= 5, "advice_risk_level", "R1 to R5")
    check_ids(v, "note_ids", list(req.note_ids))
    check_text(v, "suitability_override_reason", req.suitability_override_reason, 1000)
    when = backfill_time(o, p, v, req.backfill_time)
    v.raise_if_any()
    async with o.db.read() as s:
        row = await _load(s, p, req.id)
    _check_keeper(p, row)
    _ensure_open(row, Msg("analyse"))
    client = await o.directory.get_client(row.client_id)
    problem = suitability_problem(req.advice_risk_level, client)
    override = bool(problem)
    if problem and not req.suitability_override_reason.strip():
        raise FailedPrecondition(
            "unsuitable advice: {problem}; record suitability_override_reason to override",
            problem=problem,
            reason="SUITABILITY_MISMATCH")
    now = o.now()
    async with o.db.transaction() as s:
        row = await _load(s, p, req.id, lock=True)
        _ensure_open(row, Msg("analyse"))
        row.analysis = req.analysis
        row.advice = req.advice
        row.advice_risk_level = req.advice_risk_level
        row.client_risk_tolerance = client.risk_tolerance
        row.risk_assessment_expired = client.risk_assessment_expired
        row.suitability_override = override
        row.override_reason = req.suitability_override_reason.strip() if override else ""
        row.note_ids = dumps(list(req.note_ids))
        row.analysed_at = when
        # a backfilled paper form names the consultant who wrote it, not the admin typing it in
        row.analysed_by = row.consultant_id if req.HasField("backfill_time") else p.staff_id
        row.state = ANALYSED
        row.updated_at = now
        s.add(row)
        emit(s, subject="branch.onsite.consultation.analysed",
             message=events_pb2.ConsultationAnalysed(
                 form_id=row.id, client_id=row.client_id, consultant_id=row.consultant_id,
                 advice_risk_level=row.advice_risk_level,
                 suitability_override=override, note_ids=list(req.note_ids)),
             about=row.id, now=now)
        if override:
            log.warning("suitability override recorded", form_id=row.id, staff_id=p.staff_id)
        return await _out(s, o, row)


def _check_keeper(p: Principal, row: FormRow) -> None:
    if not is_branch_wide(p) and row.consultant_id != p.staff_id:
        raise PermissionDenied("only the consultant who keeps the form may analyse it",
                               reason="NOT_FORM_CONSULTANT")


async def deliver(o: Onsite, p: Principal,
                  req: api.DeliverConsultationFormRequest) -> consultation_pb2.ConsultationForm:
    v = Violations()
    v.check(bool(req.id), "id", "required")
    check_text(v, "acknowledgement", req.acknowledgement, 1000, required=True)
    when = backfill_time(o, p, v, req.backfill_time)
    v.raise_if_any()
    now = o.now()
    async with o.db.transaction() as s:
        row = await _load(s, p, req.id, lock=True)
        if row.state == RAISED:
            raise FailedPrecondition("the form has no analysis yet; analyse it first",
                                     reason="FORM_NOT_ANALYSED")
        _ensure_open(row, Msg("deliver"))
        if row.client_flag == consultation_pb2.FORM_FLAG_CLIENT_CLOSED:
            raise FailedPrecondition("the client has left the branch; cancel the form",
                                     reason="CLIENT_CLOSED")
        if row.analysed_at and when < row.analysed_at:
            raise InvalidArgument({"backfill_time": "must not be before the analysis"})
        row.state = DELIVERED
        row.delivered_at = when
        row.delivered_by = (row.client_manager_id if req.HasField("backfill_time")
                            else p.staff_id)
        row.acknowledgement = req.acknowledgement
        row.updated_at = now
        s.add(row)
        emit(s, subject="branch.onsite.consultation.delivered",
             message=events_pb2.ConsultationDelivered(
                 form_id=row.id, client_id=row.client_id, consultant_id=row.consultant_id,
                 client_manager_id=row.client_manager_id, note_ids=loads(row.note_ids),
                 deliver_time=ts(when)),
             about=row.id, now=now)
        return await _out(s, o, row)


async def cancel(o: Onsite, p: Principal,
                 req: api.CancelConsultationFormRequest) -> consultation_pb2.ConsultationForm:
    v = Violations()
    v.check(bool(req.id), "id", "required")
    check_text(v, "reason", req.reason, 1000, required=True)
    when = backfill_time(o, p, v, req.backfill_time)
    v.raise_if_any()
    now = o.now()
    async with o.db.transaction() as s:
        row = await _load(s, p, req.id, lock=True)
        _ensure_open(row, Msg("cancel"))
        row.state = CANCELLED
        row.cancelled_at = when
        row.cancelled_by = p.staff_id
        row.cancel_reason = req.reason
        row.updated_at = now
        s.add(row)
        emit(s, subject="branch.onsite.consultation.cancelled",
             message=events_pb2.ConsultationCancelled(form_id=row.id, client_id=row.client_id,
                                                      reason=req.reason),
             about=row.id, now=now)
        return await _out(s, o, row)


# ---- the deadline --------------------------------------------------------------------------

async def check_overdue(o: Onsite, *, batch: int = 500) -> int:
    """One pass: claim each open form past its deadline and raise its event, exactly once.

    The claim is a conditional UPDATE (overdue_at IS NULL) whose rowcount says whether this
    replica won; the event is written in the same transaction only then.
    """
    now = o.now()
    async with o.db.read() as s:
        due = list((await s.exec(
            select(FormRow.id).where(
                col(FormRow.state).in_(OPEN_STATES), col(FormRow.overdue_at).is_(None),
                col(FormRow.deadline) <= now,
            ).order_by(col(FormRow.deadline)).limit(batch)
        )).all())
    raised = 0
    for form_id in due:
        async with o.db.transaction() as s:
            result = await s.exec(
                update(FormRow)
                .where(col(FormRow.id) == form_id, col(FormRow.overdue_at).is_(None),
                       col(FormRow.state).in_(OPEN_STATES), col(FormRow.deadline) <= now)
                .values(overdue_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                continue
            row = await s.get(FormRow, form_id)
            assert row is not None
            emit(s, subject="branch.onsite.consultation.overdue",
                 message=events_pb2.ConsultationOverdue(
                     form_id=row.id, client_id=row.client_id, consultant_id=row.consultant_id,
                     client_manager_id=row.client_manager_id, deadline=ts(row.deadline)),
                 about=row.id, now=now)
            raised += 1
    if raised:
        log.info("overdue forms raised", count=raised)
    return raised

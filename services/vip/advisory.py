"""Advisory requests: assignment, acknowledge/answer SLAs, the escalation chain, the research
round trip and suitability of the advice given."""

from __future__ import annotations

from datetime import datetime

from branch.directory.v1 import client_pb2
from branch.remote.v1 import events_pb2 as remote_events
from branch.research.v1 import events_pb2 as research_events
from branch.vip.v1 import advisory_pb2, events_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from sqlalchemy import and_, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    Msg,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import Event, emit
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import enum_name, ts
from services.vip import convert
from services.vip.core import Vip, assessment_expired, suitability_problem
from services.vip.models import Advisory, Breach, Escalation, RosterEntry
from services.vip.roster import ACTIVE, OPEN_ADVISORY_STATES, sees_client
from services.vip.rota import is_on_shift, on_shift

log = get_logger("vip", component="advisory")

S = advisory_pb2
BREACH_ACK = api.BREACH_KIND_ADVISORY_ACKNOWLEDGE
BREACH_ANSWER = api.BREACH_KIND_ADVISORY_ANSWER
MAX_TICKERS = 20


# ---- scope -------------------------------------------------------------------------------

def can_see(principal: Principal, row: Advisory) -> bool:
    if principal.sees_branch:
        return True
    return principal.has("broker") and principal.staff_id in (
        row.assignee_id, row.escalated_to_id, row.dedicated_broker_id)


def can_work(principal: Principal, row: Advisory) -> bool:
    if principal.has("supervisor", "admin"):
        return True
    return principal.has("broker") and principal.staff_id in (row.assignee_id,
                                                               row.escalated_to_id)


async def _load(session: AsyncSession, principal: Principal, advisory_id: str,
                *, work: bool = False) -> Advisory:
    if not advisory_id:
        raise InvalidArgument({"id": "required"})
    row = await session.get(Advisory, advisory_id)
    if row is None:
        raise NotFound("advisory {advisory_id} not found", advisory_id=advisory_id)
    if not can_see(principal, row):
        raise PermissionDenied("advisory is not for you", reason="OUT_OF_SCOPE")
    if work and not can_work(principal, row):
        raise PermissionDenied("advisory is assigned to another broker", reason="NOT_ASSIGNEE")
    return row


# ---- create ------------------------------------------------------------------------------

async def assign(session: AsyncSession, entry: RosterEntry, now: datetime) -> str:
    """The dedicated broker if on shift, else the broker on call (earliest shift), else the
    dedicated broker anyway (a rota gap: the supervisor's gap report shows it)."""
    if entry.broker_id and await is_on_shift(session, entry.broker_id,
                                             rota_pb2.SHIFT_ROLE_BROKER, now):
        return entry.broker_id
    shifts = await on_shift(session, rota_pb2.SHIFT_ROLE_BROKER, now)
    return shifts[0].staff_id if shifts else entry.broker_id


def validate_new(msg: advisory_pb2.Advisory, *, from_rpc: bool) -> None:
    v = Violations()
    v.check(bool(msg.client_id), "advisory.client_id", "required")
    v.check(bool(msg.question.strip()), "advisory.question", "required")
    v.check(len(msg.question) <= 2000, "advisory.question", "at most 2000 characters")
    if len(msg.tickers) > MAX_TICKERS:
        v.add("advisory.tickers", "at most {max_tickers}", max_tickers=MAX_TICKERS)
    elif any(not t or len(t) > 16 or "," in t for t in msg.tickers):
        v.add("advisory.tickers", "1 to 16 characters each, no commas")
    v.check(msg.urgency in (S.URGENCY_UNSPECIFIED, S.URGENCY_NORMAL, S.URGENCY_HIGH),
            "advisory.urgency", "NORMAL or HIGH")
    allowed = {S.ADVISORY_SOURCE_UNSPECIFIED, S.ADVISORY_SOURCE_BROKER, S.ADVISORY_SOURCE_HOTLINE}
    if not from_rpc:
        allowed.add(S.ADVISORY_SOURCE_TICKET)
    v.check(msg.source in allowed, "advisory.source", "BROKER or HOTLINE")
    v.raise_if_any()


async def open_advisory(vip: Vip, session: AsyncSession, msg: advisory_pb2.Advisory, *,
                        created_by: str, source: int, ticket_id: str = "") -> Advisory:
    entry = await session.get(RosterEntry, msg.client_id)
    if entry is None or entry.status != ACTIVE:
        raise FailedPrecondition("client is not on the key-client roster",
                                 reason="CLIENT_NOT_KEY")
    now = vip.now()
    urgency = msg.urgency or S.URGENCY_NORMAL
    row = Advisory(
        id=new_id(), client_id=msg.client_id, question=msg.question.strip(),
        tickers=",".join(t.upper() for t in msg.tickers), urgency=urgency, source=source,
        source_ticket_id=ticket_id, state=S.ADVISORY_STATE_OPEN,
        assignee_id=await assign(session, entry, now), dedicated_broker_id=entry.broker_id,
        opened_at=now, ack_due_at=now + vip.config.ack_window(urgency),
        answer_due_at=now + vip.config.answer_window(urgency), created_by=created_by,
    )
    session.add(row)
    emit(session, subject="branch.vip.advisory.opened",
         message=events_pb2.AdvisoryOpened(advisory_id=row.id, client_id=row.client_id,
                                           broker_id=row.assignee_id,
                                           source_ticket_id=ticket_id, open_time=ts(now)),
         about=row.id, now=now)
    log.info("advisory opened", advisory_id=row.id, client_id=row.client_id,
             assignee_id=row.assignee_id, source=source)
    return row


async def create(vip: Vip, session: AsyncSession, principal: Principal,
                 msg: advisory_pb2.Advisory) -> advisory_pb2.Advisory:
    validate_new(msg, from_rpc=True)
    entry = await session.get(RosterEntry, msg.client_id)
    if principal.has("broker") and not principal.sees_branch and not sees_client(
        principal, entry
    ):
        raise PermissionDenied("client is not yours", reason="OUT_OF_SCOPE")
    source = msg.source or (S.ADVISORY_SOURCE_HOTLINE if principal.has("service_agent")
                            and not principal.has("broker") else S.ADVISORY_SOURCE_BROKER)
    row = await open_advisory(vip, session, msg, created_by=principal.staff_id, source=source)
    return convert.advisory_to_proto(row)


# ---- work --------------------------------------------------------------------------------

def _require_open(row: Advisory) -> None:
    if row.state not in OPEN_ADVISORY_STATES:
        raise FailedPrecondition("advisory is {state}",
                                 state=Msg(enum_name(S.AdvisoryState, row.state)),
                                 reason="ADVISORY_NOT_OPEN")


def _mark_acknowledged(vip: Vip, session: AsyncSession, row: Advisory, actor: str) -> None:
    now = vip.now()
    row.state, row.acked_at = S.ADVISORY_STATE_ACKNOWLEDGED, now
    emit(session, subject="branch.vip.advisory.acknowledged",
         message=events_pb2.AdvisoryAcknowledged(
             advisory_id=row.id, client_id=row.client_id, broker_id=actor,
             acknowledge_time=ts(now), late=now > row.ack_due_at),
         about=row.id, now=now)


async def acknowledge(vip: Vip, principal: Principal, advisory_id: str) -> advisory_pb2.Advisory:
    async with vip.db.transaction() as session:
        row = await _load(session, principal, advisory_id, work=True)
        if row.acked_at is None:
            _require_open(row)
            _mark_acknowledged(vip, session, row, principal.staff_id)
            session.add(row)
        return convert.advisory_to_proto(row)


async def request_research(vip: Vip, principal: Principal,
                           req: api.RequestAdvisoryResearchRequest) -> advisory_pb2.Advisory:
    if len(req.question) > 2000:
        raise InvalidArgument({"question": "at most 2000 characters"})
    async with vip.db.transaction() as session:
        row = await _load(session, principal, req.id, work=True)
        if row.state == S.ADVISORY_STATE_AWAITING_RESEARCH:
            return convert.advisory_to_proto(row)
        _require_open(row)
        if row.acked_at is None:
            _mark_acknowledged(vip, session, row, principal.staff_id)
        now = vip.now()
        row.state, row.research_requested = S.ADVISORY_STATE_AWAITING_RESEARCH, True
        session.add(row)
        analysts = await on_shift(session, rota_pb2.SHIFT_ROLE_ANALYST, now)
        emit(session, subject="branch.vip.advisory.research_requested",
             message=events_pb2.AdvisoryResearchRequested(
                 advisory_id=row.id, client_id=row.client_id, asker_id=principal.staff_id,
                 tickers=row.tickers.split(",") if row.tickers else [],
                 question=req.question.strip() or row.question, due_time=ts(row.answer_due_at),
                 on_call_analyst_id=analysts[0].staff_id if analysts else "",
                 urgency=enum_name(S.Urgency, row.urgency).removeprefix("URGENCY_")),
             about=row.id, now=now)
        return convert.advisory_to_proto(row)


async def answer(vip: Vip, principal: Principal,
                 req: api.AnswerAdvisoryRequest) -> advisory_pb2.Advisory:
    v = Violations()
    v.check(bool(req.advice.strip()), "advice", "required")
    v.check(len(req.advice) <= 4000, "advice", "at most 4000 characters")
    v.check(1 <= req.risk_level <= 5, "risk_level", "R1 to R5")
    v.check(len(req.override_reason) <= 500, "override_reason", "at most 500 characters")
    v.raise_if_any()
    async with vip.db.transaction() as session:
        row = await _load(session, principal, req.id, work=True)
        _require_open(row)
        entry = await session.get(RosterEntry, row.client_id)
        tolerance = entry.risk_tolerance if entry else 0
        expired = assessment_expired(entry.risk_assessed_on if entry else None, vip.today())
        problem = suitability_problem(req.risk_level, tolerance, expired)
        override = req.override_reason.strip()
        if problem and not override:
            raise FailedPrecondition(
                "advice not suitable: {problem}; give override_reason to proceed", problem=problem,
                reason="SUITABILITY_MISMATCH")
        now = vip.now()
        if row.acked_at is None:
            _mark_acknowledged(vip, session, row, principal.staff_id)
        row.state, row.answered_at, row.answered_by = S.ADVISORY_STATE_ANSWERED, now, \
            principal.staff_id
        row.advice, row.advice_risk_level = req.advice.strip(), req.risk_level
        row.suitability_overridden = bool(problem)
        row.override_reason = override if problem else ""
        session.add(row)
        emit(session, subject="branch.vip.advisory.answered",
             message=events_pb2.AdvisoryAnswered(
                 advisory_id=row.id, client_id=row.client_id, broker_id=principal.staff_id,
                 advice_risk_level=req.risk_level, suitability_overridden=bool(problem),
                 answer_time=ts(now), late=now > row.answer_due_at,
                 source_ticket_id=row.source_ticket_id),
             about=row.id, now=now)
        if problem:
            log.warning("advice given with suitability override", advisory_id=row.id,
                        staff_id=principal.staff_id)
        return convert.advisory_to_proto(row)


async def close(vip: Vip, principal: Principal, req: api.CloseAdvisoryRequest
                ) -> advisory_pb2.Advisory:
    v = Violations()
    v.check(bool(req.reason.strip()), "reason", "required")
    v.check(len(req.reason) <= 500, "reason", "at most 500 characters")
    v.raise_if_any()
    async with vip.db.transaction() as session:
        row = await _load(session, principal, req.id, work=True)
        _require_open(row)
        now = vip.now()
        row.state, row.closed_at, row.close_reason = S.ADVISORY_STATE_CLOSED, now, req.reason
        session.add(row)
        emit(session, subject="branch.vip.advisory.closed",
             message=events_pb2.AdvisoryClosed(advisory_id=row.id, client_id=row.client_id,
                                               reason=req.reason, close_time=ts(now),
                                               source_ticket_id=row.source_ticket_id),
             about=row.id, now=now)
        return convert.advisory_to_proto(row)


async def get(vip: Vip, principal: Principal, advisory_id: str) -> advisory_pb2.Advisory:
    async with vip.db.read() as session:
        return convert.advisory_to_proto(await _load(session, principal, advisory_id))


async def list_(vip: Vip, principal: Principal,
                req: api.ListAdvisoriesRequest) -> api.ListAdvisoriesResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token)
    if req.state not in S.AdvisoryState.values():
        raise InvalidArgument({"state": "unknown state"})
    query = select(Advisory).order_by(col(Advisory.id).desc()).limit(size + 1)
    if after:
        query = query.where(col(Advisory.id) < str(after[0]))
    if req.client_id:
        query = query.where(col(Advisory.client_id) == req.client_id)
    if req.state:
        query = query.where(col(Advisory.state) == req.state)
    if req.source_ticket_id:
        query = query.where(col(Advisory.source_ticket_id) == req.source_ticket_id)
    if req.broker_id:
        query = query.where(or_(col(Advisory.assignee_id) == req.broker_id,
                                col(Advisory.escalated_to_id) == req.broker_id))
    if not principal.sees_branch:
        if req.broker_id and req.broker_id != principal.staff_id:
            raise PermissionDenied("brokers see only their own advisories",
                                   reason="OUT_OF_SCOPE")
        me = principal.staff_id
        query = query.where(or_(col(Advisory.assignee_id) == me,
                                col(Advisory.escalated_to_id) == me,
                                col(Advisory.dedicated_broker_id) == me))
    async with vip.db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    rows = rows[:size]
    return api.ListAdvisoriesResponse(
        advisories=[convert.advisory_to_proto(r) for r in rows],
        next_page_token=encode_token(rows[-1].id) if more else "",
    )


# ---- SLA timer ---------------------------------------------------------------------------

async def _claim(session: AsyncSession, advisory_id: str, *conditions, **values) -> bool:  # type: ignore[no-untyped-def]
    """Conditional UPDATE: True only for the one replica whose update changed the row."""
    result = await session.exec(
        update(Advisory).where(col(Advisory.id) == advisory_id, *conditions)
        .values(**values)
    )
    return result.rowcount == 1


async def check_sla(vip: Vip) -> int:
    """One pass of the advisory SLA timer: breaches and escalation steps, each raised once
    even when several replicas run the pass together. Returns how many were raised."""
    now = vip.now()
    async with vip.db.read() as session:
        ids = (await session.exec(
            select(Advisory.id).where(
                col(Advisory.state).in_(OPEN_ADVISORY_STATES),
                col(Advisory.ack_due_at) <= now,
                # only rows with something left to raise, so quiet passes write nothing
                or_(and_(col(Advisory.state) == S.ADVISORY_STATE_OPEN,
                         col(Advisory.ack_breached_at).is_(None)),
                    and_(col(Advisory.answer_due_at) <= now,
                         col(Advisory.answer_breached_at).is_(None)),
                    and_(col(Advisory.escalation_level) == 0,
                         or_(col(Advisory.ack_breached_at).is_not(None),
                             col(Advisory.answer_breached_at).is_not(None))),
                    and_(col(Advisory.escalation_level) == 1,
                         col(Advisory.answer_breached_at).is_not(None))),
            ).order_by(col(Advisory.ack_due_at)).limit(500)
        )).all()
    raised = 0
    for advisory_id in ids:
        async with vip.db.transaction() as session:
            raised += await _check_one(vip, session, advisory_id, now)
    return raised


async def _check_one(vip: Vip, session: AsyncSession, advisory_id: str, now: datetime) -> int:
    raised = 0
    open_states = col(Advisory.state).in_(OPEN_ADVISORY_STATES)
    row = await session.get(Advisory, advisory_id)
    if row is None:
        return 0
    if row.state == S.ADVISORY_STATE_OPEN and row.ack_due_at <= now and await _claim(
        session, advisory_id, col(Advisory.ack_breached_at).is_(None),
        col(Advisory.state) == S.ADVISORY_STATE_OPEN, ack_breached_at=now,
    ):
        _breach(session, row, BREACH_ACK, "acknowledge", row.ack_due_at, now)
        raised += 1
    if row.answer_due_at <= now and await _claim(
        session, advisory_id, col(Advisory.answer_breached_at).is_(None), open_states,
        answer_breached_at=now,
    ):
        _breach(session, row, BREACH_ANSWER, "answer", row.answer_due_at, now)
        raised += 1
    await session.refresh(row)
    breached = row.ack_breached_at is not None or row.answer_breached_at is not None
    if breached and row.escalation_level == 0 and row.state in OPEN_ADVISORY_STATES:
        target = await _backup_for(session, row, now)
        if await _claim(session, advisory_id, col(Advisory.escalation_level) == 0, open_states,
                        escalation_level=1, step1_at=now, escalated_to_id=target):
            _escalated(session, row, 1, target, now)
            raised += 1
            await session.refresh(row)
    if (row.escalation_level == 1 and row.answer_breached_at is not None
            and row.step1_at is not None and row.state in OPEN_ADVISORY_STATES
            and now >= max(row.answer_due_at, row.step1_at + vip.config.ack_window(row.urgency))):
        sups = await on_shift(session, rota_pb2.SHIFT_ROLE_SUPERVISOR, now)
        target = sups[0].staff_id if sups else ""
        if await _claim(session, advisory_id, col(Advisory.escalation_level) == 1, open_states,
                        escalation_level=2, step2_at=now, escalated_to_id=target):
            _escalated(session, row, 2, target, now)
            raised += 1
    return raised


async def _backup_for(session: AsyncSession, row: Advisory, now: datetime) -> str:
    entry = await session.get(RosterEntry, row.client_id)
    if entry and entry.backup_broker_id and entry.backup_broker_id != row.assignee_id:
        return entry.backup_broker_id
    for shift in await on_shift(session, rota_pb2.SHIFT_ROLE_BROKER, now):
        if shift.staff_id != row.assignee_id:
            return shift.staff_id
    return ""


def _breach(session: AsyncSession, row: Advisory, kind: int, sla: str, due: datetime,
            now: datetime) -> None:
    session.add(Breach(id=new_id(), kind=kind, resource_id=row.id, client_id=row.client_id,
                       broker_id=row.assignee_id, due_at=due, breached_at=now))
    emit(session, subject="branch.vip.advisory.overdue",
         message=events_pb2.AdvisoryOverdue(advisory_id=row.id, client_id=row.client_id,
                                            broker_id=row.assignee_id, sla=sla,
                                            due_time=ts(due), breach_time=ts(now)),
         about=row.id, now=now)
    log.warning("advisory SLA breached", advisory_id=row.id, sla=sla)


def _escalated(session: AsyncSession, row: Advisory, level: int, target: str,
               now: datetime) -> None:
    session.add(Escalation(id=new_id(), advisory_id=row.id, client_id=row.client_id,
                           level=level, to_staff_id=target,
                           from_staff_id=row.escalated_to_id or row.assignee_id,
                           broker_id=row.assignee_id, escalated_at=now))
    emit(session, subject="branch.vip.advisory.escalated",
         message=events_pb2.AdvisoryEscalated(
             advisory_id=row.id, client_id=row.client_id, level=level,
             escalated_to_id=target, previous_assignee_id=row.assignee_id,
             escalate_time=ts(now)),
         about=row.id, now=now)
    log.warning("advisory escalated", advisory_id=row.id, level=level, to_staff_id=target)


# ---- event handlers ----------------------------------------------------------------------

URGENT_PRIORITIES = {"high", "urgent", "critical", "p1"}


def handlers(vip: Vip):  # type: ignore[no-untyped-def]
    async def on_ticket_opened(session: AsyncSession, event: Event) -> None:
        msg = event.parse(remote_events.TicketOpened)
        if not msg.ticket_id or not msg.client_id:
            return
        entry = await session.get(RosterEntry, msg.client_id)
        if entry is None or entry.status != ACTIVE:
            if msg.client_tier == client_pb2.TIER_KEY and entry is None:
                # the directory's tier event has not reached us yet: retry later
                raise RuntimeError("key client not on the roster yet")
            return
        existing = (await session.exec(
            select(Advisory.id).where(col(Advisory.source_ticket_id) == msg.ticket_id))).first()
        if existing is not None:
            return
        question = msg.summary.strip() or f"hotline ticket {msg.ticket_id}"
        urgency = S.URGENCY_HIGH if msg.priority.lower() in URGENT_PRIORITIES else \
            S.URGENCY_NORMAL
        await open_advisory(
            vip, session,
            advisory_pb2.Advisory(client_id=msg.client_id, question=question[:2000],
                                  urgency=urgency),
            created_by=msg.owner_id or "svc:remote", source=S.ADVISORY_SOURCE_TICKET,
            ticket_id=msg.ticket_id,
        )

    async def on_request_answered(session: AsyncSession, event: Event) -> None:
        msg = event.parse(research_events.RequestAnswered)
        if not msg.advisory_id:
            return
        row = await session.get(Advisory, msg.advisory_id)
        if row is None:
            return
        row.research_answer = msg.answer[:4000]
        row.research_note_id = msg.note_id
        row.research_analyst_id = msg.analyst_id
        row.research_answered_at = vip.now()
        if row.state == S.ADVISORY_STATE_AWAITING_RESEARCH:
            row.state = S.ADVISORY_STATE_ACKNOWLEDGED
        session.add(row)
        log.info("research answer reached advisory", advisory_id=row.id)

    return on_ticket_opened, on_request_answered


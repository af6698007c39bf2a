"""Research requests: asked by RPC or by a VIP advisory event, queued by due time, claimed and
answered by analysts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from branch.research.v1 import events_pb2, note_enums_pb2, note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api
from branch.vip.v1 import events_pb2 as vip_events
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import SERVICE_ROLE, Principal
from services.common.clock import Clock
from services.common.consumer import PermanentError
from services.common.db import Database
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import Event, emit
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import encode_token, page_size
from services.common.protos import from_ts, ts
from services.research import convert
from services.research.checks import parse_event, time_id_after
from services.research.models import Note, ResearchRequest
from services.research.notes import TICKER

R = research_request_pb2
SUBJECT_ANSWERED = "branch.research.request.answered"
MAX_DUE = timedelta(days=90)
# A VIP advisory without a due time is answered within four hours.
DEFAULT_DUE = timedelta(hours=4)
QUEUE_STATES = (R.RESEARCH_REQUEST_STATE_OPEN, R.RESEARCH_REQUEST_STATE_CLAIMED)
log = get_logger("research", component="requests")


def sees_all_requests(p: Principal) -> bool:
    return p.has("analyst", "supervisor", "compliance", "admin", SERVICE_ROLE)


@dataclass
class Requests:
    db: Database
    clock: Clock

    async def create(
        self, session: AsyncSession, p: Principal, msg: research_request_pb2.ResearchRequest
    ) -> research_request_pb2.ResearchRequest:
        v = Violations()
        now = self.clock.now()
        if not msg.question.strip():
            v.add("research_request.question", "required")
        elif len(msg.question) > 4000:
            v.add("research_request.question", "at most 4000 characters")
        v.check(len(msg.client_id) <= 36, "research_request.client_id", "at most 36 characters")
        tickers: list[str] = []
        v.check(len(msg.tickers) <= 20, "research_request.tickers", "at most 20")
        for i, raw in enumerate(msg.tickers):
            ticker = raw.strip().upper()
            if not TICKER.match(ticker):
                v.add(f"research_request.tickers[{i}]",
                      "must be 1-16 upper-case letters, digits, '.' or '-'")
            elif ticker not in tickers:
                tickers.append(ticker)
        due = from_ts(msg.due_time)
        if due is None:
            v.add("research_request.due_time", "required")
        elif due <= now:
            v.add("research_request.due_time", "must be in the future")
        elif due - now > MAX_DUE:
            v.add("research_request.due_time", "at most 90 days ahead")
        v.raise_if_any()
        assert due is not None
        row = ResearchRequest(
            id=new_id(), state=R.RESEARCH_REQUEST_STATE_OPEN,
            source=R.RESEARCH_REQUEST_SOURCE_STAFF, asker_id=p.staff_id,
            client_id=msg.client_id, tickers=convert.tickers_to_column(tickers),
            question=msg.question.strip(), due_at=due, created_at=now,
        )
        session.add(row)
        return convert.request_to_proto(row, now)

    async def on_advisory(self, session: AsyncSession, event: Event) -> None:
        """branch.vip.advisory.research_requested: queue the question once per advisory."""
        msg = parse_event(event, vip_events.AdvisoryResearchRequested)
        if not msg.advisory_id or not msg.question.strip():
            raise PermanentError("advisory_id and question are required")
        existing = (await session.exec(
            select(ResearchRequest.id).where(col(ResearchRequest.advisory_id) == msg.advisory_id)
        )).first()
        if existing is not None:
            return
        now = self.clock.now()
        tickers: list[str] = []
        for raw in msg.tickers:
            ticker = raw.strip().upper()
            if TICKER.match(ticker) and ticker not in tickers:
                tickers.append(ticker)
        if len(tickers) != len(msg.tickers):
            log.warning("advisory request had unusable tickers", event_id=event.id,
                        kept=len(tickers), given=len(msg.tickers))
        due = from_ts(msg.due_time) or (event.time + DEFAULT_DUE)
        session.add(ResearchRequest(
            id=new_id(), state=R.RESEARCH_REQUEST_STATE_OPEN,
            source=R.RESEARCH_REQUEST_SOURCE_VIP_ADVISORY, asker_id=msg.asker_id[:100],
            client_id=msg.client_id[:36], advisory_id=msg.advisory_id[:64],
            tickers=convert.tickers_to_column(tickers[:20]),
            question=msg.question.strip(), due_at=due, created_at=now,
        ))

    async def _row(self, session: AsyncSession, request_id: str) -> ResearchRequest:
        if not request_id:
            raise InvalidArgument({"id": "required"})
        row = await session.get(ResearchRequest, request_id)
        if row is None:
            raise NotFound("research request {request_id} not found", request_id=request_id,
                           reason="RESEARCH_REQUEST_NOT_FOUND")
        return row

    async def get(self, p: Principal, request_id: str) -> research_request_pb2.ResearchRequest:
        async with self.db.read() as session:
            row = await self._row(session, request_id)
        if not sees_all_requests(p) and row.asker_id != p.staff_id:
            raise PermissionDenied("staff see the research requests they asked",
                                   reason="NOT_ASKER")
        return convert.request_to_proto(row, self.clock.now())

    async def list(
        self, p: Principal, req: api.ListResearchRequestsRequest
    ) -> api.ListResearchRequestsResponse:
        size = page_size(req.page_size)
        after = time_id_after(req.page_token)
        if req.state and req.state not in R.ResearchRequestState.values():
            raise InvalidArgument({"state": "unknown state"})
        asker = req.asker_id
        if not sees_all_requests(p):
            if asker and asker != p.staff_id:
                raise PermissionDenied("staff see the research requests they asked",
                                       reason="NOT_ASKER")
            asker = p.staff_id
        query = (select(ResearchRequest)
                 .order_by(col(ResearchRequest.due_at), col(ResearchRequest.id))
                 .limit(size + 1))
        if req.state:
            query = query.where(col(ResearchRequest.state) == req.state)
        else:
            query = query.where(col(ResearchRequest.state).in_(QUEUE_STATES))
        if asker:
            query = query.where(col(ResearchRequest.asker_id) == asker)
        if req.claimed_by:
            query = query.where(col(ResearchRequest.claimed_by) == req.claimed_by)
        if after is not None:
            when, last_id = after
            query = query.where(or_(
                col(ResearchRequest.due_at) > when,
                (col(ResearchRequest.due_at) == when) & (col(ResearchRequest.id) > last_id),
            ))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > size
        rows = rows[:size]
        now = self.clock.now()
        return api.ListResearchRequestsResponse(
            research_requests=[convert.request_to_proto(r, now) for r in rows],
            next_page_token=encode_token(rows[-1].due_at.isoformat(), rows[-1].id) if more else "",
        )

    async def claim(self, p: Principal, request_id: str) -> research_request_pb2.ResearchRequest:
        if not request_id:
            raise InvalidArgument({"id": "required"})
        now = self.clock.now()
        async with self.db.transaction() as session:
            # conditional update: of two analysts claiming at once, exactly one wins
            result = await session.exec(
                update(ResearchRequest)
                .where(col(ResearchRequest.id) == request_id,
                       col(ResearchRequest.state) == R.RESEARCH_REQUEST_STATE_OPEN)
                .values(state=R.RESEARCH_REQUEST_STATE_CLAIMED, claimed_by=p.staff_id,
                        claimed_at=now)
            )
            row = await self._row(session, request_id)
            await session.refresh(row)
            won = result.rowcount == 1
            if not won and not (
                row.state == R.RESEARCH_REQUEST_STATE_CLAIMED and row.claimed_by == p.staff_id
            ):
                if row.state == R.RESEARCH_REQUEST_STATE_CLAIMED:
                    raise FailedPrecondition("another analyst has claimed this request",
                                             reason="ALREADY_CLAIMED")
                raise FailedPrecondition("the request is already answered",
                                         reason="ALREADY_ANSWERED")
            return convert.request_to_proto(row, now)

    async def release(self, p: Principal, request_id: str) -> research_request_pb2.ResearchRequest:
        if not request_id:
            raise InvalidArgument({"id": "required"})
        now = self.clock.now()
        async with self.db.transaction() as session:
            # conditional update, as in claim: an answer committed meanwhile (on another
            # replica) is never turned back into an open request
            mine = [col(ResearchRequest.id) == request_id,
                    col(ResearchRequest.state) == R.RESEARCH_REQUEST_STATE_CLAIMED]
            if not p.has("supervisor"):
                mine.append(col(ResearchRequest.claimed_by) == p.staff_id)
            result = await session.exec(
                update(ResearchRequest)
                .where(*mine)
                .values(state=R.RESEARCH_REQUEST_STATE_OPEN, claimed_by="", claimed_at=None)
            )
            row = await self._row(session, request_id)
            await session.refresh(row)
            if result.rowcount != 1:
                if row.state != R.RESEARCH_REQUEST_STATE_CLAIMED:
                    raise FailedPrecondition("only a claimed request can be released",
                                             reason="NOT_CLAIMED")
                raise PermissionDenied("only the analyst who claimed it may release it",
                                       reason="NOT_CLAIMANT")
            return convert.request_to_proto(row, now)

    async def answer(
        self, p: Principal, req: api.AnswerResearchRequestRequest
    ) -> research_request_pb2.ResearchRequest:
        v = Violations()
        v.check(bool(req.id), "id", "required")
        if not req.answer.strip() and not req.note_id:
            v.add("answer", "required unless note_id names a note")
        elif len(req.answer) > 4000:
            v.add("answer", "at most 4000 characters")
        v.raise_if_any()
        now = self.clock.now()
        async with self.db.transaction() as session:
            note = None
            if req.note_id:
                note = await session.get(Note, req.note_id)
                if (note is None or note.state != note_pb2.NOTE_STATE_PUBLISHED
                        or now >= note.valid_until_at):
                    raise InvalidArgument({"note_id": "must be a published, unexpired note"})
            row = (await session.exec(
                select(ResearchRequest).where(col(ResearchRequest.id) == req.id).with_for_update()
            )).first()
            if row is None:
                raise NotFound("research request {id} not found", id=req.id,
                               reason="RESEARCH_REQUEST_NOT_FOUND")
            if row.state == R.RESEARCH_REQUEST_STATE_ANSWERED:
                raise FailedPrecondition("the request is already answered",
                                         reason="ALREADY_ANSWERED")
            if note is not None and row.client_id and (
                    note.audience == note_enums_pb2.AUDIENCE_STAFF_ONLY):
                # the answer is relayed to the client: a staff-only note must not reach one
                raise InvalidArgument({"note_id": "a staff-only note cannot answer a client's "
                                                  "question"})
            if row.state == R.RESEARCH_REQUEST_STATE_CLAIMED and row.claimed_by != p.staff_id:
                raise FailedPrecondition("another analyst has claimed this request",
                                         reason="ALREADY_CLAIMED")
            if row.state == R.RESEARCH_REQUEST_STATE_OPEN:  # answering claims it
                row.claimed_by = p.staff_id
                row.claimed_at = now
            row.state = R.RESEARCH_REQUEST_STATE_ANSWERED
            row.answer = req.answer.strip()
            row.answer_note_id = req.note_id
            row.answered_by = p.staff_id
            row.answered_at = now
            session.add(row)
            emit(session, subject=SUBJECT_ANSWERED, about=row.id, now=now,
                 message=events_pb2.RequestAnswered(
                     request_id=row.id, asker_id=row.asker_id, client_id=row.client_id,
                     advisory_id=row.advisory_id or "", answer=row.answer,
                     note_id=row.answer_note_id, analyst_id=p.staff_id, answer_time=ts(now),
                     note_revision=note.published_revision if note else 0,
                     note_risk_level=note.risk_level if note else 0,  # type: ignore[arg-type]
                 ))
            return convert.request_to_proto(row, now)


SUBJECT_OVERDUE = "branch.research.request.overdue"
OVERDUE_BATCH = 200
OVERDUE_POLL_SECONDS = 15.0


async def check_overdue(db: Database, clock: Clock) -> int:
    """One pass of the overdue timer: raise the event once per unanswered request past due.

    Safe with several replicas: each request is claimed by a conditional UPDATE and the event
    is written in the same transaction only when this replica's update won.
    """
    now = clock.now()
    async with db.read() as session:
        due = list((await session.exec(
            select(ResearchRequest.id)
            .where(col(ResearchRequest.state).in_(QUEUE_STATES),
                   col(ResearchRequest.overdue_at).is_(None),
                   col(ResearchRequest.due_at) <= now)
            .order_by(col(ResearchRequest.due_at)).limit(OVERDUE_BATCH)
        )).all())
    raised = 0
    for request_id in due:
        async with db.transaction() as session:
            result = await session.exec(
                update(ResearchRequest)
                .where(col(ResearchRequest.id) == request_id,
                       col(ResearchRequest.overdue_at).is_(None),
                       col(ResearchRequest.state).in_(QUEUE_STATES))
                .values(overdue_at=now)
            )
            if result.rowcount != 1:
                continue
            row = await session.get(ResearchRequest, request_id)
            assert row is not None
            emit(session, subject=SUBJECT_OVERDUE, about=row.id, now=now,
                 message=events_pb2.RequestOverdue(
                     request_id=row.id, asker_id=row.asker_id, client_id=row.client_id,
                     advisory_id=row.advisory_id or "", claimed_by=row.claimed_by,
                     due_time=ts(row.due_at),
                 ))
            raised += 1
    if raised:
        log.info("research requests overdue", count=raised)
    return raised


async def overdue_loop(db: Database, clock: Clock, stop: asyncio.Event,
                       every: float = OVERDUE_POLL_SECONDS) -> None:
    while not stop.is_set():
        try:
            await check_overdue(db, clock)
        except Exception as exc:  # the next pass retries; a timer must not die
            log.warning("overdue check failed", error=type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass

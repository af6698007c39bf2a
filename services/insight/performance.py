"""Performance reviews (绩效管理, 篇3): targets per person and month taken from the callback
campaigns' quotas and the service SLAs, actuals counted from the read model, key events good
and bad (关键事件法), the feedback interview with an improvement plan, and an appeal
(受理申诉) decided by a supervisor other than the reviewer."""

from __future__ import annotations

import json
from datetime import date, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import performance_pb2
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.calendar import BranchCalendar
from services.common.clock import Clock, month_of
from services.common.db import Database
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.insight.inspections import MONTH, average, parse_month
from services.insight.models import Activity, Campaign, Inspection, KeyEvent, PerformanceReview

P = performance_pb2
TEAMS = ("service_agent", "broker")
# The branch's service norms (篇5): 90% of hotline tickets and of VIP advisories inside their
# SLA, and a mean inspection total of 80.
SLA_TARGET_PERCENT = Decimal(90)
INSPECTION_TARGET = Decimal(80)
SEES_ALL = ("supervisor", "admin")
MAX_TEXT = 8000


def _pct(part: int, whole: int) -> str:
    if not whole:
        return ""
    return str((Decimal(part) * 100 / whole).quantize(Decimal("0.1"), ROUND_HALF_UP))


def key_event_to_proto(row: KeyEvent) -> performance_pb2.KeyEvent:
    return P.KeyEvent(id=row.id, review_id=row.review_id, kind=row.kind,  # type: ignore[arg-type]
                      occurred_day=row.occurred_day.isoformat(), description=row.description,
                      recorded_by=row.recorded_by, create_time=ts(row.created_at))


class Performance:
    def __init__(self, db: Database, clock: Clock, tz: tzinfo,
                 calendar: BranchCalendar) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.calendar = calendar

    # ---- targets and actuals ---------------------------------------------------------------

    async def _targets(self, session: AsyncSession, person_id: str, team: str,
                       month: str) -> list[dict[str, str]]:
        first, last = month_of(parse_month(month, "month"))
        targets = []
        if team == "service_agent":
            campaigns = (await session.exec(select(Campaign).where(
                col(Campaign.agent_ids).contains(f",{person_id},")))).all()
            calls, used = 0, 0
            for c in campaigns:
                start = max(first, c.start_date or first)
                end = min(last, c.end_date or last)
                if start <= end and c.daily_quota:
                    calls += c.daily_quota * self.calendar.working_days(start, end)
                    used += 1
            targets.append({"metric": "callbacks", "target": str(calls),
                            "source": f"{used} campaign(s): daily quota x working days"})
            targets.append({"metric": "sla_compliance_percent",
                            "target": str(SLA_TARGET_PERCENT), "source": "hotline SLA norm"})
        else:
            targets.append({"metric": "advisories_on_time_percent",
                            "target": str(SLA_TARGET_PERCENT), "source": "VIP advisory SLA"})
        targets.append({"metric": "inspection_average", "target": str(INSPECTION_TARGET),
                        "source": "quality inspection norm"})
        return targets

    async def _actuals(self, session: AsyncSession, person_id: str,
                       month: str) -> dict[str, str]:
        first, last = month_of(parse_month(month, "month"))
        rows = (await session.exec(select(Activity.kind, func.sum(Activity.amount)).where(
            Activity.person_id == person_id, col(Activity.local_day) >= first,
            col(Activity.local_day) <= last).group_by(Activity.kind))).all()
        n = {kind: int(amount) for kind, amount in rows}
        totals = (await session.exec(select(Inspection.total_score).where(
            Inspection.person_id == person_id, Inspection.month == month))).all()
        answered = n.get("advisory_answered", 0)
        return {
            "callbacks": str(n.get("callback", 0)),
            "sla_compliance_percent": _pct(n.get("feedback_sla", 0), n.get("feedback", 0)),
            "advisories_on_time_percent": _pct(answered - n.get("advisory_late", 0), answered),
            "inspection_average": average(list(totals)),
        }

    async def _to_proto(self, session: AsyncSession,
                        row: PerformanceReview) -> performance_pb2.PerformanceReview:
        actual = await self._actuals(session, row.person_id, row.month)
        targets = []
        for t in json.loads(row.targets):
            value = actual.get(t["metric"], "")
            targets.append(P.Target(metric=t["metric"], target=t["target"], actual=value,
                                    met=bool(value) and Decimal(value) >= Decimal(t["target"]),
                                    source=t["source"]))
        events = (await session.exec(select(KeyEvent).where(
            KeyEvent.review_id == row.id).order_by(col(KeyEvent.id)))).all()
        return P.PerformanceReview(
            id=row.id, person_id=row.person_id, team=row.team, month=row.month,
            reviewer_id=row.reviewer_id, state=row.state,  # type: ignore[arg-type]
            targets=targets, key_events=[key_event_to_proto(e) for e in events],
            interview_summary=row.interview_summary, improvement_plan=row.improvement_plan,
            interview_time=ts(row.interviewed_at), appeal_reason=row.appeal_reason,
            appeal_decision=row.appeal_decision, create_time=ts(row.created_at))

    # ---- commands --------------------------------------------------------------------------

    async def create(self, session: AsyncSession, p: Principal,
                     msg: performance_pb2.PerformanceReview) -> performance_pb2.PerformanceReview:
        """Raises InvalidArgument (performance_review.person_id/team/month), AlreadyExists
        (a review of that person and month)."""
        v = Violations()
        v.check(0 < len(msg.person_id) <= 100, "performance_review.person_id", "required")
        v.check(msg.team in TEAMS, "performance_review.team", "service_agent or broker")
        v.check(bool(MONTH.match(msg.month)), "performance_review.month", "a month, YYYY-MM")
        v.check(msg.person_id != p.staff_id, "performance_review.person_id",
                "nobody reviews themselves")
        v.raise_if_any()
        exists = (await session.exec(select(PerformanceReview.id).where(
            PerformanceReview.person_id == msg.person_id,
            PerformanceReview.month == msg.month))).first()
        if exists is not None:
            raise AlreadyExists("review {exists} exists for that person and month", exists=exists)
        row = PerformanceReview(
            id=new_id(), person_id=msg.person_id, team=msg.team, month=msg.month,
            reviewer_id=p.staff_id, state=P.PERFORMANCE_REVIEW_STATE_OPEN,
            targets=json.dumps(await self._targets(session, msg.person_id, msg.team,
                                                   msg.month)),
            created_at=self.clock.now())
        session.add(row)
        await session.flush()
        return await self._to_proto(session, row)

    async def add_key_event(self, session: AsyncSession, p: Principal,
                            msg: performance_pb2.KeyEvent) -> performance_pb2.KeyEvent:
        v = Violations()
        v.check(msg.kind in (P.KEY_EVENT_KIND_GOOD, P.KEY_EVENT_KIND_BAD), "key_event.kind",
                "GOOD or BAD")
        v.check(0 < len(msg.description.strip()) <= MAX_TEXT, "key_event.description",
                "1-{max_text} characters", max_text=MAX_TEXT)
        try:
            day = date.fromisoformat(msg.occurred_day)
        except ValueError:
            day = None
            v.add("key_event.occurred_day", "a date, YYYY-MM-DD")
        v.raise_if_any()
        review = await session.get(PerformanceReview, msg.review_id)
        if review is None:
            raise NotFound("review {review_id} not found", review_id=msg.review_id)
        assert day is not None
        if day.strftime("%Y-%m") != review.month:
            v.add("key_event.occurred_day", "inside the review's month")
            v.raise_if_any()
        if review.state == P.PERFORMANCE_REVIEW_STATE_CLOSED:
            raise FailedPrecondition("the review is closed", reason="CLOSED")
        row = KeyEvent(id=new_id(), review_id=review.id, kind=msg.kind, occurred_day=day,
                       description=msg.description.strip(), recorded_by=p.staff_id,
                       created_at=self.clock.now())
        session.add(row)
        await session.flush()
        return key_event_to_proto(row)

    async def interview(self, p: Principal, req: api.InterviewPerformanceReviewRequest
                        ) -> performance_pb2.PerformanceReview:
        v = Violations()
        v.check(0 < len(req.interview_summary.strip()) <= MAX_TEXT, "interview_summary",
                "1-{max_text} characters", max_text=MAX_TEXT)
        v.check(0 < len(req.improvement_plan.strip()) <= MAX_TEXT, "improvement_plan",
                "1-{max_text} characters", max_text=MAX_TEXT)
        v.raise_if_any()
        async with self.db.transaction() as session:
            row = await self._row(session, req.id)
            if row.state != P.PERFORMANCE_REVIEW_STATE_OPEN:
                raise FailedPrecondition("the interview is already recorded",
                                         reason="INTERVIEWED")
            row.interview_summary = req.interview_summary.strip()
            row.improvement_plan = req.improvement_plan.strip()
            row.interviewed_at = self.clock.now()
            row.state = P.PERFORMANCE_REVIEW_STATE_INTERVIEWED
            session.add(row)
            return await self._to_proto(session, row)

    async def appeal(self, p: Principal,
                     req: api.AppealPerformanceReviewRequest) -> performance_pb2.PerformanceReview:
        if not 0 < len(req.reason.strip()) <= MAX_TEXT:
            v = Violations()
            v.add("reason", "1-{max_text} characters", max_text=MAX_TEXT)
            v.raise_if_any()
        async with self.db.transaction() as session:
            row = await self._row(session, req.id)
            if row.person_id != p.staff_id:
                raise PermissionDenied("only the reviewed person appeals",
                                       reason="NOT_YOUR_RECORD")
            if row.state != P.PERFORMANCE_REVIEW_STATE_INTERVIEWED:
                raise FailedPrecondition("appeal after the feedback interview, once",
                                         reason="NOT_APPEALABLE")
            row.appeal_reason = req.reason.strip()
            row.state = P.PERFORMANCE_REVIEW_STATE_APPEALED
            session.add(row)
            return await self._to_proto(session, row)

    async def decide(self, p: Principal, req: api.DecidePerformanceReviewAppealRequest
                     ) -> performance_pb2.PerformanceReview:
        if not 0 < len(req.decision.strip()) <= MAX_TEXT:
            v = Violations()
            v.add("decision", "1-{max_text} characters", max_text=MAX_TEXT)
            v.raise_if_any()
        async with self.db.transaction() as session:
            row = await self._row(session, req.id)
            if row.state != P.PERFORMANCE_REVIEW_STATE_APPEALED:
                raise FailedPrecondition("no open appeal", reason="NO_APPEAL")
            if p.staff_id in (row.reviewer_id, row.person_id):
                raise FailedPrecondition("the appeal goes to someone else than the reviewer",
                                         reason="OWN_REVIEW")
            row.appeal_decision = req.decision.strip()
            row.state = P.PERFORMANCE_REVIEW_STATE_CLOSED
            session.add(row)
            return await self._to_proto(session, row)

    # ---- reading ---------------------------------------------------------------------------

    @staticmethod
    async def _row(session: AsyncSession, review_id: str) -> PerformanceReview:
        row = await session.get(PerformanceReview, review_id)
        if row is None:
            raise NotFound("review {review_id} not found", review_id=review_id)
        return row

    async def get(self, p: Principal, review_id: str) -> performance_pb2.PerformanceReview:
        async with self.db.read() as session:
            row = await self._row(session, review_id)
            if not p.has(*SEES_ALL) and row.person_id != p.staff_id:
                raise PermissionDenied("you may see only your own review",
                                       reason="NOT_YOUR_RECORD")
            return await self._to_proto(session, row)

    async def list(self, p: Principal, req: api.ListPerformanceReviewsRequest
                   ) -> api.ListPerformanceReviewsResponse:
        limit = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(PerformanceReview).order_by(col(PerformanceReview.id)).limit(limit + 1)
        if not p.has(*SEES_ALL):
            query = query.where(PerformanceReview.person_id == p.staff_id)
        if req.month:
            parse_month(req.month, "month")
            query = query.where(PerformanceReview.month == req.month)
        if after:
            query = query.where(col(PerformanceReview.id) > str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
            more = len(rows) > limit
            rows = rows[:limit]
            return api.ListPerformanceReviewsResponse(
                performance_reviews=[await self._to_proto(session, r) for r in rows],
                next_page_token=encode_token(rows[-1].id) if more else "")

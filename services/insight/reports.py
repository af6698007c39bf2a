"""The reports pack (日报, 周报, 月报, 篇5): figures of a period counted from the read model in
branch time, stored once per (kind, period) across replicas, and generated on schedule: each
day's report after the day, each week's after the week, and the month's (with the monthly
service quality analysis) on the last working day on or before the 22nd of the next month."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from branch.insight.v1 import events_pb2, inspection_pb2, report_pb2
from branch.insight.v1 import insight_service_pb2 as api
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.calendar import BranchCalendar
from services.common.clock import (
    Clock,
    add_months,
    day_range,
    local_today,
    month_of,
    week_of,
)
from services.common.db import Database
from services.common.errors import InvalidArgument, NotFound, Violations
from services.common.events import emit
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.common.upsert import insert_missing
from services.insight.inspections import average
from services.insight.models import Activity, Inspection, Ticket
from services.insight.models import Report as ReportRow

R = report_pb2
GENERATED = "branch.insight.report.generated"
SCHEDULE = "schedule"
KIND_NAMES: dict[int, str] = {R.REPORT_KIND_DAILY: "daily", R.REPORT_KIND_WEEKLY: "weekly",
              R.REPORT_KIND_MONTHLY: "monthly"}
# Waiting work (工单滞留) by age at the end of the period, in days: [low, high).
AGE_BANDS = (("0-1d", 0, 1), ("1-3d", 1, 3), ("3-7d", 3, 7), (">7d", 7, None))
MONTHLY_DUE_DAY = 22
log = get_logger("insight", component="reports")


def period_of(kind: int, day: date) -> tuple[date, date]:
    """First and last branch-local day of the kind's period containing day."""
    if kind == R.REPORT_KIND_DAILY:
        return day, day
    if kind == R.REPORT_KIND_WEEKLY:
        return week_of(day)
    if kind == R.REPORT_KIND_MONTHLY:
        return month_of(day)
    raise InvalidArgument({"kind": "DAILY, WEEKLY or MONTHLY"})


def monthly_due(calendar: BranchCalendar, month_first: date) -> date:
    """When the month's report is due: the last working day on or before the 22nd of the next
    month (a 22nd on a holiday moves the deadline earlier, so it is still handed in on time)."""
    due = add_months(month_first, 1).replace(day=MONTHLY_DUE_DAY)
    for _ in range(MONTHLY_DUE_DAY - 1):
        if calendar.is_working_day(due):
            return due
        due -= timedelta(days=1)
    return due


def percent(part: int, whole: int) -> str:
    if not whole:
        return ""
    return str((Decimal(part) * 100 / whole).quantize(Decimal("0.1"), ROUND_HALF_UP))


def to_proto(row: ReportRow) -> report_pb2.Report:
    figures = R.ReportFigures()
    figures.ParseFromString(row.figures)
    return R.Report(id=row.id, kind=row.kind,  # type: ignore[arg-type]
                    period_start=row.period_start.isoformat(),
                    period_end=row.period_end.isoformat(), figures=figures,
                    generate_time=ts(row.generated_at), generated_by=row.generated_by)


class Reports:
    def __init__(self, db: Database, clock: Clock, tz: tzinfo,
                 calendar: BranchCalendar) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.calendar = calendar

    # ---- figures ---------------------------------------------------------------------------

    async def figures(self, session: AsyncSession, kind: int, first: date,
                      last: date) -> report_pb2.ReportFigures:
        start, end = day_range(first, last, self.tz)
        sums: dict[str, int] = defaultdict(int)
        per_person: dict[tuple[str, str], int] = defaultdict(int)
        per_day: dict[date, int] = defaultdict(int)
        rows = (await session.exec(select(
            col(Activity.kind), col(Activity.person_id), col(Activity.local_day),
            func.sum(Activity.amount)).where(
            col(Activity.local_day) >= first, col(Activity.local_day) <= last).group_by(
            col(Activity.kind), col(Activity.person_id), col(Activity.local_day)))).all()
        for activity, person, day, amount in rows:
            sums[activity] += int(amount)
            per_person[(activity, person)] += int(amount)
            if activity == "accepted":
                per_day[day] += int(amount)
        waiting = [0] * len(AGE_BANDS)
        tickets = (await session.exec(select(Ticket.opened_at).where(
            col(Ticket.opened_at).is_not(None), col(Ticket.opened_at) < end,
            (col(Ticket.resolved_at).is_(None)) | (col(Ticket.resolved_at) >= end)))).all()
        for opened in tickets:
            age = (end - opened).total_seconds() / 86400  # type: ignore[operator]
            for i, (_, low, high) in enumerate(AGE_BANDS):
                if age >= low and (high is None or age < high):
                    waiting[i] += 1
                    break
        query = select(Inspection).where(
            Inspection.state == inspection_pb2.INSPECTION_STATE_SCORED)
        if kind == R.REPORT_KIND_MONTHLY:
            query = query.where(Inspection.month == first.strftime("%Y-%m"))
        else:
            query = query.where(col(Inspection.scored_at) >= start,
                                col(Inspection.scored_at) < end)
        inspections = list((await session.exec(query)).all())
        by_person: dict[str, list[Inspection]] = defaultdict(list)
        for inspection in inspections:
            by_person[inspection.person_id].append(inspection)
        teams = {i.person_id: i.team for i in inspections}
        people_ids = sorted({p for (a, p) in per_person if p and a in (
            "accepted", "callback", "advisory_answered")} | set(by_person))
        people = [R.PersonFigures(
            person_id=pid, team=teams.get(pid) or (
                "broker" if per_person.get(("advisory_answered", pid)) else "service_agent"),
            accepted=per_person.get(("accepted", pid), 0),
            callbacks=per_person.get(("callback", pid), 0),
            advisories_answered=per_person.get(("advisory_answered", pid), 0),
            inspections_scored=len(by_person.get(pid, [])),
            average_score=average([i.total_score for i in by_person.get(pid, [])]),
        ) for pid in people_ids]
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        return R.ReportFigures(
            accepted=sums["accepted"], supervised=sums["supervised"],
            feedback=sums["feedback"], callbacks=sums["callback"],
            tickets_closed=sums["ticket_closed"], resolved_within_sla=sums["feedback_sla"],
            sla_compliance_percent=percent(sums["feedback_sla"], sums["feedback"]),
            waiting=[R.AgeBand(label=label, count=waiting[i])
                     for i, (label, _, _) in enumerate(AGE_BANDS)],
            callback_target=sums["callback_target"],
            callback_quota_missed=sums["quota_missed"],
            visits=sums["visit"], patrols=sums["patrol"],
            working_days=self.calendar.working_days(first, last),
            consultations_delivered=sums["consultation_delivered"],
            consultations_overdue=sums["consultation_overdue"],
            advisories_opened=sums["advisory_opened"],
            advisories_answered=sums["advisory_answered"],
            advisories_late=sums["advisory_late"],
            research_delivered=sums["research_delivered"],
            inspections_scored=len(inspections),
            average_score=average([i.total_score for i in inspections]),
            compliance_flags=sum(1 for i in inspections if i.flagged),
            people=people,
            daily_accepted=[R.DayCount(day=d.isoformat(), count=per_day.get(d, 0))
                            for d in days])

    # ---- generation ------------------------------------------------------------------------

    async def generate(self, kind: int, day: date, by: str) -> tuple[report_pb2.Report, bool]:
        """Builds and stores the report of the period containing day, unless it is stored
        already (by this or another replica). Returns the stored report and whether this
        call made it. Raises InvalidArgument when the period is not over."""
        first, last = period_of(kind, day)
        if last >= local_today(self.clock, self.tz):
            raise InvalidArgument({"day": "the period must be over (branch time)"})
        now = self.clock.now()
        async with self.db.transaction() as session:
            existing = await self._stored(session, kind, first)
            if existing is not None:
                return to_proto(existing), False
            figures = await self.figures(session, kind, first, last)
            report_id = new_id()
            won = await insert_missing(
                session, ReportRow,
                {"id": report_id, "kind": kind, "period_start": first, "period_end": last,
                 "figures": figures.SerializeToString(), "generated_by": by[:100],
                 "generated_at": now},
                ["kind", "period_start"])
            if won:
                emit(session, subject=GENERATED, about=report_id, now=now,
                     message=events_pb2.ReportGenerated(
                         report_id=report_id, kind=KIND_NAMES[kind],
                         period_start=first.isoformat(), period_end=last.isoformat(),
                         generate_time=ts(now)))
        async with self.db.read() as session:
            row = await self._stored(session, kind, first)
        assert row is not None
        if won:
            log.info("report generated", kind=KIND_NAMES[kind], period_start=first.isoformat(),
                     report_id=row.id)
        return to_proto(row), won

    @staticmethod
    async def _stored(session: AsyncSession, kind: int, first: date) -> ReportRow | None:
        return (await session.exec(select(ReportRow).where(
            ReportRow.kind == kind, ReportRow.period_start == first))).first()

    async def generate_due(self) -> int:
        """The timer's pass: yesterday's daily report, last week's weekly report and, from its
        due day on, last month's monthly report. Returns how many this call made."""
        today = local_today(self.clock, self.tz)
        made = 0
        due = [(R.REPORT_KIND_DAILY, today - timedelta(days=1)),
               (R.REPORT_KIND_WEEKLY, week_of(today)[0] - timedelta(days=1))]
        last_month = add_months(today.replace(day=1), -1)
        if today >= monthly_due(self.calendar, last_month):
            due.append((R.REPORT_KIND_MONTHLY, last_month))
        for kind, day in due:
            _, won = await self.generate(kind, day, SCHEDULE)
            made += won
        return made

    # ---- reading ---------------------------------------------------------------------------

    async def get(self, report_id: str) -> report_pb2.Report:
        async with self.db.read() as session:
            row = await session.get(ReportRow, report_id)
        if row is None:
            raise NotFound("report {report_id} not found", report_id=report_id)
        return to_proto(row)

    async def list(self, req: api.ListReportsRequest) -> api.ListReportsResponse:
        limit = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(ReportRow).order_by(col(ReportRow.id).desc()).limit(limit + 1)
        if req.kind:
            query = query.where(ReportRow.kind == req.kind)
        if after:
            query = query.where(col(ReportRow.id) < str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return api.ListReportsResponse(reports=[to_proto(r) for r in rows],
                                       next_page_token=encode_token(rows[-1].id) if more
                                       else "")


def parse_day(value: str, field: str = "day") -> date:
    v = Violations()
    try:
        return date.fromisoformat(value)
    except ValueError:
        v.add(field, "a date, YYYY-MM-DD")
        v.raise_if_any()
        raise


"""The quality inspector's weekly summary (质检周总结, 篇5 服务台): summary text, the common
faults raised at the shift briefing and a training plan, per ISO week in branch time, shown
with the week's inspection figures (inspections scored Monday 00:00 to the next Monday 00:00
branch time)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, timedelta, tzinfo

from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import weekly_summary_pb2 as W
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock, day_start
from services.common.db import Database
from services.common.errors import AlreadyExists, InvalidArgument, NotFound, Violations
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.common.upsert import insert_missing
from services.insight import scorecards
from services.insight.inspections import average
from services.insight.models import Inspection, WeeklySummaryRow

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
MAX_TEXT = 8000
MAX_ITEMS = 50


def parse_week(value: str, field: str = "week") -> date:
    """The Monday of an ISO week "YYYY-Www". Raises InvalidArgument naming `field`."""
    m = WEEK.match(value)
    try:
        if m:
            return date.fromisocalendar(int(m[1]), int(m[2]), 1)
    except ValueError:
        pass
    raise InvalidArgument({field: "an ISO week, YYYY-Www (e.g. 2026-W10)"})


def _check(msg: W.WeeklySummary, known: set[str]) -> Violations:
    f = "weekly_summary"
    v = Violations()
    v.check(0 < len(msg.summary.strip()) <= MAX_TEXT, f"{f}.summary", "1-{max_text} characters",
            max_text=MAX_TEXT)
    v.check(len(msg.common_faults) <= MAX_ITEMS, f"{f}.common_faults", "at most {max_items}",
            max_items=MAX_ITEMS)
    v.check(len(msg.training_plan) <= MAX_ITEMS, f"{f}.training_plan", "at most {max_items}",
            max_items=MAX_ITEMS)
    for i, fault in enumerate(msg.common_faults):
        v.check(fault.criterion_key in known, f"{f}.common_faults[{i}].criterion_key",
                "a criterion key of the active scorecard")
        v.check(0 < len(fault.note.strip()) <= 2000, f"{f}.common_faults[{i}].note",
                "1-2000 characters")
    for i, item in enumerate(msg.training_plan):
        v.check(0 < len(item.topic.strip()) <= 200, f"{f}.training_plan[{i}].topic",
                "1-200 characters")
        v.check(0 < len(item.who.strip()) <= 100, f"{f}.training_plan[{i}].who",
                "1-100 characters: a staff id or a team")
        try:
            date.fromisoformat(item.due_date)
            ok = len(item.due_date) == 10
        except ValueError:
            ok = False
        v.check(ok, f"{f}.training_plan[{i}].due_date", "a date, YYYY-MM-DD")
    return v


def _faults(msg: W.WeeklySummary) -> str:
    return json.dumps([{"criterion_key": x.criterion_key, "note": x.note.strip()}
                       for x in msg.common_faults], ensure_ascii=False)


def _plan(msg: W.WeeklySummary) -> str:
    return json.dumps([{"topic": x.topic.strip(), "who": x.who.strip(), "due_date": x.due_date}
                       for x in msg.training_plan], ensure_ascii=False)


def figures(rows: list[Inspection]) -> W.WeekFigures:
    """Count, mean total and failed checks per criterion of scored inspections."""
    failed: Counter[str] = Counter()
    for r in rows:
        for s in json.loads(r.scores or "[]"):
            if not s.get("passed", True):
                failed[s["criterion_key"]] += 1
    return W.WeekFigures(inspections=len(rows), average_score=average(
        [r.total_score for r in rows]), failures=[
        W.CriterionFailures(criterion_key=k, failed=n) for k, n in sorted(failed.items())])


class WeeklySummaries:
    def __init__(self, db: Database, clock: Clock, tz: tzinfo,
                 cards: scorecards.Scorecards) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.cards = cards

    async def _to_proto(self, session: AsyncSession, row: WeeklySummaryRow) -> W.WeeklySummary:
        start = day_start(row.week_start, self.tz)
        end = day_start(row.week_start + timedelta(days=7), self.tz)
        scored = list((await session.exec(select(Inspection).where(
            col(Inspection.scored_at) >= start, col(Inspection.scored_at) < end))).all())
        return W.WeeklySummary(
            week=row.week, week_start=row.week_start.isoformat(), summary=row.summary,
            common_faults=[W.CommonFault(**x) for x in json.loads(row.common_faults)],
            training_plan=[W.TrainingItem(**x) for x in json.loads(row.training_plan)],
            figures=figures(scored), author_id=row.author_id,
            create_time=ts(row.created_at), update_time=ts(row.updated_at))

    async def _known(self, session: AsyncSession) -> set[str]:
        return {c.key for c in scorecards.criteria_of(await self.cards.active(session))}

    async def create(self, author_id: str, msg: W.WeeklySummary) -> W.WeeklySummary:
        """Stores the week's summary. Raises InvalidArgument (naming the fields),
        AlreadyExists (the week has one; another inspector's racing create included)."""
        monday = parse_week(msg.week, "weekly_summary.week")
        now = self.clock.now()
        async with self.db.transaction() as session:
            _check(msg, await self._known(session)).raise_if_any()
            won = await insert_missing(session, WeeklySummaryRow, {
                "week": msg.week, "week_start": monday, "summary": msg.summary.strip(),
                "common_faults": _faults(msg), "training_plan": _plan(msg),
                "author_id": author_id[:100], "created_at": now, "updated_at": now}, ["week"])
            if not won:
                raise AlreadyExists("week {week} has a summary; update it", week=msg.week,
                                    reason="WEEK_HAS_SUMMARY")
            row = await session.get(WeeklySummaryRow, msg.week)
            assert row is not None
            return await self._to_proto(session, row)

    async def update(self, author_id: str, msg: W.WeeklySummary) -> W.WeeklySummary:
        """Replaces summary, common_faults and training_plan. Raises InvalidArgument,
        NotFound."""
        parse_week(msg.week, "weekly_summary.week")
        async with self.db.transaction() as session:
            _check(msg, await self._known(session)).raise_if_any()
            row = await session.get(WeeklySummaryRow, msg.week, with_for_update=True)
            if row is None:
                raise NotFound("week {week} has no summary", week=msg.week)
            row.summary = msg.summary.strip()
            row.common_faults = _faults(msg)
            row.training_plan = _plan(msg)
            row.author_id = author_id[:100]
            row.updated_at = self.clock.now()
            session.add(row)
            await session.flush()
            return await self._to_proto(session, row)

    async def get(self, week: str) -> W.WeeklySummary:
        parse_week(week)
        async with self.db.read() as session:
            row = await session.get(WeeklySummaryRow, week)
            if row is None:
                raise NotFound("week {week} has no summary", week=week)
            return await self._to_proto(session, row)

    async def list(self, req: api.ListWeeklySummariesRequest) -> api.ListWeeklySummariesResponse:
        limit = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(WeeklySummaryRow).order_by(col(WeeklySummaryRow.week).desc()).limit(
            limit + 1)
        if after:
            query = query.where(col(WeeklySummaryRow.week) < str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
            more = len(rows) > limit
            rows = rows[:limit]
            out = [await self._to_proto(session, r) for r in rows]
        return api.ListWeeklySummariesResponse(
            weekly_summaries=out, next_page_token=encode_token(rows[-1].week) if more else "")

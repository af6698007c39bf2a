"""Quality inspection (质检): the monthly sample, the inspectors' queue, scoring, appeals and
the monthly and trend figures per person and team. Source: 篇5 服务台 — the inspector listens
to 1 to 5 calls of every agent each month and scores them on a composite scorecard."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from datetime import date, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from branch.insight.v1 import events_pb2, inspection_pb2
from branch.insight.v1 import insight_service_pb2 as api
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.clock import Clock, add_months, local_today
from services.common.db import Database
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.common.upsert import insert_missing
from services.insight import scorecards
from services.insight.models import Appeal, Inspection, Interaction, Sample, Scorecard
from services.insight.settings import samples_per_person

K = inspection_pb2
MAX_PER_PERSON = 5
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# Roles that see every person's inspections; everyone else sees only their own.
SEES_ALL = ("quality_inspector", "supervisor", "admin", "compliance")
DECIDERS = ("quality_inspector", "supervisor")
FLAGGED = "branch.insight.inspection.flagged"
log = get_logger("insight", component="inspections")


def parse_month(value: str, field: str) -> date:
    if not MONTH.match(value):
        raise InvalidArgument({field: "a month, YYYY-MM"})
    return date(int(value[:4]), int(value[5:]), 1)


def parse_score(value: str, field: str) -> str:
    try:
        score = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument({field: "a decimal number, 0 to 100"}) from None
    if not score.is_finite() or not 0 <= score <= 100:
        raise InvalidArgument({field: "a decimal number, 0 to 100"})
    return str(score.quantize(scorecards.TWO_PLACES, ROUND_HALF_UP))


def to_proto(row: Inspection) -> inspection_pb2.Inspection:
    return K.Inspection(
        id=row.id, person_id=row.person_id, team=row.team, month=row.month,
        interaction_kind=row.kind,  # type: ignore[arg-type]
        interaction_id=row.interaction_id, client_id=row.client_id,
        interaction_time=ts(row.interaction_at), scorecard_id=row.scorecard_id,
        state=row.state,  # type: ignore[arg-type]
        inspector_id=row.inspector_id,
        scores=[K.CriterionScore(**s) for s in json.loads(row.scores)],
        total_score=row.total_score, compliance_flagged=row.flagged, comment=row.comment,
        draw_time=ts(row.drawn_at), score_time=ts(row.scored_at))


def appeal_to_proto(row: Appeal) -> inspection_pb2.Appeal:
    return K.Appeal(
        id=row.id, inspection_id=row.inspection_id, person_id=row.person_id, reason=row.reason,
        state=row.state,  # type: ignore[arg-type]
        decider_id=row.decider_id, decision=row.decision, revised_score=row.revised_score,
        create_time=ts(row.created_at), decide_time=ts(row.decided_at))


def sample_of(person_id: str, month: str, pool: list[Interaction], k: int) -> list[Interaction]:
    """The person's sample for the month: seeded by (person, month), so every replica, and
    every rerun, draws the same interactions from the same pool."""
    ordered = sorted(pool, key=lambda r: r.id)
    return random.Random(f"{person_id}:{month}").sample(ordered, min(k, len(ordered)))


class Inspections:
    def __init__(self, db: Database, clock: Clock, tz: tzinfo,
                 cards: scorecards.Scorecards) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz
        self.cards = cards

    # ---- sampling --------------------------------------------------------------------------

    async def draw(self, month: str, per_person: int = 0) -> api.DrawSamplesResponse:
        """Draws every person's sample for a finished month; a person already drawn (by this or
        another replica) is left alone. per_person 0 takes the branch's InspectionSettings
        (the scheduled draw always does). Raises InvalidArgument for a bad month or count."""
        v = Violations()
        v.check(0 <= per_person <= MAX_PER_PERSON, "per_person",
                "1 to 5, or 0 for the branch's setting")
        first = parse_month(month, "month")
        this_month = local_today(self.clock, self.tz).replace(day=1)
        v.check(first < this_month, "month", "must be over (before the current month)")
        v.raise_if_any()
        async with self.db.read() as session:
            k = per_person or await samples_per_person(session)
            drawn = set((await session.exec(select(Sample.person_id).where(
                Sample.month == month))).all())
            people = sorted(set((await session.exec(select(
                Interaction.person_id, Interaction.team).where(
                Interaction.month == month))).all()))
        created = 0
        for person_id, team in people:
            if person_id in drawn:
                continue
            created += await self._draw_person(person_id, team, month, k)
        async with self.db.read() as session:
            total = len((await session.exec(select(Sample.id).where(
                Sample.month == month))).all())
        return api.DrawSamplesResponse(drawn=created, people=total)

    async def _draw_person(self, person_id: str, team: str, month: str, k: int) -> int:
        now = self.clock.now()
        async with self.db.transaction() as session:
            won = await insert_missing(
                session, Sample,
                {"person_id": person_id, "month": month, "drawn": 0, "drawn_at": now},
                ["person_id", "month"])
            if not won:
                return 0
            pool = list((await session.exec(select(Interaction).where(
                Interaction.month == month, Interaction.person_id == person_id))).all())
            card = await self.cards.active(session)
            chosen = sample_of(person_id, month, pool, k)
            for item in chosen:
                session.add(Inspection(
                    id=new_id(), person_id=person_id, team=team, month=month, kind=item.kind,
                    interaction_id=item.interaction_id, client_id=item.client_id,
                    interaction_at=item.occurred_at, scorecard_id=card.id,
                    state=K.INSPECTION_STATE_PENDING, drawn_at=now))
            sample = (await session.exec(select(Sample).where(
                Sample.person_id == person_id, Sample.month == month))).one()
            sample.drawn = len(chosen)
            session.add(sample)
        log.info("sample drawn", person_id=person_id, month=month, drawn=len(chosen))
        return len(chosen)

    async def draw_due(self) -> int:
        """The timer's pass: draws last month's samples (branch time) for anyone not drawn."""
        last = add_months(local_today(self.clock, self.tz).replace(day=1), -1)
        return (await self.draw(last.strftime("%Y-%m"))).drawn

    # ---- reading ---------------------------------------------------------------------------

    @staticmethod
    def _check_scope(p: Principal, person_id: str) -> None:
        if not p.has(*SEES_ALL) and person_id != p.staff_id:
            raise PermissionDenied("you may see only your own inspections",
                                   reason="NOT_YOUR_RECORD")

    async def get(self, p: Principal, inspection_id: str) -> inspection_pb2.Inspection:
        async with self.db.read() as session:
            row = await session.get(Inspection, inspection_id)
        if row is None:
            raise NotFound("inspection {inspection_id} not found", inspection_id=inspection_id)
        self._check_scope(p, row.person_id)
        return to_proto(row)

    async def list(self, p: Principal,
                   req: api.ListInspectionsRequest) -> api.ListInspectionsResponse:
        limit = page_size(req.page_size)
        after = decode_token(req.page_token)
        person = req.person_id
        if not p.has(*SEES_ALL):
            if person and person != p.staff_id:
                raise PermissionDenied("you may see only your own inspections",
                                       reason="NOT_YOUR_RECORD")
            person = p.staff_id
        if req.month:
            parse_month(req.month, "month")
        query = select(Inspection).order_by(col(Inspection.id)).limit(limit + 1)
        if person:
            query = query.where(Inspection.person_id == person)
        if req.month:
            query = query.where(Inspection.month == req.month)
        if req.state:
            query = query.where(Inspection.state == req.state)
        if req.compliance_flagged:
            query = query.where(col(Inspection.flagged))
        if after:
            query = query.where(col(Inspection.id) > str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return api.ListInspectionsResponse(inspections=[to_proto(r) for r in rows],
                                           next_page_token=encode_token(rows[-1].id) if more
                                           else "")

    # ---- scoring ---------------------------------------------------------------------------

    async def score(self, p: Principal,
                    req: api.ScoreInspectionRequest) -> inspection_pb2.Inspection:
        """Scores a pending inspection: one CriterionScore per criterion of its card, scores
        0-100. Raises NotFound, FailedPrecondition (already scored, own call),
        InvalidArgument (scores naming the bad entries)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            row = await session.get(Inspection, req.id)
            if row is None:
                raise NotFound("inspection {id} not found", id=req.id)
            if row.person_id == p.staff_id:
                raise FailedPrecondition("nobody scores their own call", reason="OWN_CALL")
            if row.state != K.INSPECTION_STATE_PENDING:
                raise FailedPrecondition("the inspection is already scored",
                                         reason="ALREADY_SCORED")
            card = await session.get(Scorecard, row.scorecard_id)
            criteria = scorecards.criteria_of(card) if card else []
            given = {s.criterion_key: s for s in req.scores}
            v = Violations()
            known = {c.key for c in criteria}
            for i, s in enumerate(req.scores):
                v.check(s.criterion_key in known, f"scores[{i}].criterion_key",
                        "a criterion of the inspection's scorecard")
                v.check(0 <= s.score <= 100, f"scores[{i}].score", "0 to 100")
                v.check(len(s.comment) <= 2000, f"scores[{i}].comment", "at most 2000 chars")
            missing = [c.key for c in criteria if c.key not in given]
            v.check(not missing, "scores", "missing criteria: {names}", names=', '.join(missing))
            v.check(len(given) == len(req.scores), "scores", "one entry per criterion")
            v.check(len(req.comment) <= 4000, "comment", "at most 4000 characters")
            v.raise_if_any()
            failed = [c.key for c in criteria if c.check and not given[c.key].passed]
            row.scores = json.dumps([
                {"criterion_key": c.key, "score": 0 if c.check else given[c.key].score,
                 "passed": bool(given[c.key].passed) if c.check else True,
                 "comment": given[c.key].comment} for c in criteria], ensure_ascii=False)
            row.total_score = scorecards.weighted_total(
                criteria, {k: s.score for k, s in given.items()})
            row.state = K.INSPECTION_STATE_SCORED
            row.inspector_id = p.staff_id
            row.comment = req.comment
            row.scored_at = now
            row.flagged = bool(failed)
            session.add(row)
            if failed:
                emit(session, subject=FLAGGED, about=row.id, now=now,
                     message=events_pb2.InspectionFlagged(
                         inspection_id=row.id, person_id=row.person_id,
                         interaction_id=row.interaction_id, failed_checks=failed,
                         flag_time=ts(now)))
            return to_proto(row)

    # ---- appeals ---------------------------------------------------------------------------

    async def appeal(self, session: AsyncSession, p: Principal,
                     msg: inspection_pb2.Appeal) -> inspection_pb2.Appeal:
        """The inspection's person appeals its result (受理申诉). Raises InvalidArgument,
        NotFound, PermissionDenied (not their inspection), FailedPrecondition (not scored, or
        an appeal already open)."""
        v = Violations()
        v.check(bool(msg.inspection_id), "appeal.inspection_id", "required")
        v.check(0 < len(msg.reason.strip()) <= 4000, "appeal.reason", "1-4000 characters")
        v.raise_if_any()
        row = await session.get(Inspection, msg.inspection_id)
        if row is None:
            raise NotFound("inspection {inspection_id} not found", inspection_id=msg.inspection_id)
        if row.person_id != p.staff_id:
            raise PermissionDenied("only the inspected person appeals",
                                   reason="NOT_YOUR_RECORD")
        if row.state != K.INSPECTION_STATE_SCORED:
            raise FailedPrecondition("the inspection is not scored yet", reason="NOT_SCORED")
        open_ = (await session.exec(select(Appeal.id).where(
            Appeal.inspection_id == row.id, Appeal.state == K.APPEAL_STATE_OPEN))).first()
        if open_ is not None:
            raise FailedPrecondition("an appeal is already open", reason="APPEAL_OPEN")
        appeal = Appeal(id=new_id(), inspection_id=row.id, person_id=row.person_id,
                        reason=msg.reason.strip(), state=K.APPEAL_STATE_OPEN,
                        created_at=self.clock.now())
        session.add(appeal)
        await session.flush()
        return appeal_to_proto(appeal)

    async def decide(self, p: Principal,
                     req: api.DecideAppealRequest) -> inspection_pb2.Appeal:
        v = Violations()
        v.check(req.state in (K.APPEAL_STATE_UPHELD, K.APPEAL_STATE_REJECTED), "state",
                "UPHELD or REJECTED")
        v.check(0 < len(req.decision.strip()) <= 4000, "decision", "1-4000 characters")
        if req.state == K.APPEAL_STATE_UPHELD:
            v.check(bool(req.revised_score), "revised_score", "required when upheld")
        v.raise_if_any()
        revised = parse_score(req.revised_score, "revised_score") if req.revised_score else ""
        async with self.db.transaction() as session:
            appeal = await session.get(Appeal, req.id)
            if appeal is None:
                raise NotFound("appeal {id} not found", id=req.id)
            if appeal.state != K.APPEAL_STATE_OPEN:
                raise FailedPrecondition("the appeal is already decided", reason="DECIDED")
            row = await session.get(Inspection, appeal.inspection_id)
            assert row is not None
            if p.staff_id in (row.inspector_id, row.person_id):
                raise FailedPrecondition("the appeal goes to someone else than the inspector",
                                         reason="OWN_INSPECTION")
            appeal.state = req.state
            appeal.decision = req.decision.strip()
            appeal.decider_id = p.staff_id
            appeal.decided_at = self.clock.now()
            if req.state == K.APPEAL_STATE_UPHELD:
                appeal.revised_score = revised
                row.total_score = revised
                session.add(row)
            session.add(appeal)
            return appeal_to_proto(appeal)

    async def list_appeals(self, p: Principal,
                           req: api.ListAppealsRequest) -> api.ListAppealsResponse:
        limit = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(Appeal).order_by(col(Appeal.id)).limit(limit + 1)
        if not p.has(*SEES_ALL):
            query = query.where(Appeal.person_id == p.staff_id)
        if req.state:
            query = query.where(Appeal.state == req.state)
        if after:
            query = query.where(col(Appeal.id) > str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return api.ListAppealsResponse(appeals=[appeal_to_proto(r) for r in rows],
                                       next_page_token=encode_token(rows[-1].id) if more else "")

    # ---- figures ---------------------------------------------------------------------------

    async def summary(self, p: Principal,
                      req: api.GetInspectionSummaryRequest) -> api.GetInspectionSummaryResponse:
        """Per person and per team, per month: drawn, scored, mean total, failed checks and
        upheld appeals, for `months` months ending at `month`."""
        last = parse_month(req.month, "month")
        if not 0 <= req.months <= 12:
            raise InvalidArgument({"months": "1 to 12, or 0 for 1"})
        person = req.person_id
        if not p.has(*SEES_ALL):
            if person and person != p.staff_id:
                raise PermissionDenied("you may see only your own figures",
                                       reason="NOT_YOUR_RECORD")
            person = p.staff_id
        months = [add_months(last, -i).strftime("%Y-%m") for i in range(req.months or 1)]
        async with self.db.read() as session:
            query = select(Inspection).where(col(Inspection.month).in_(months))
            if person:
                query = query.where(Inspection.person_id == person)
            rows = list((await session.exec(query)).all())
            upheld = set((await session.exec(select(Appeal.inspection_id).where(
                Appeal.state == K.APPEAL_STATE_UPHELD))).all())
        people: dict[tuple[str, str, str], list[Inspection]] = defaultdict(list)
        teams: dict[tuple[str, str, str], list[Inspection]] = defaultdict(list)
        for r in rows:
            people[(r.month, r.person_id, r.team)].append(r)
            if not person:
                teams[(r.month, r.team, r.team)].append(r)

        def line(key: tuple[str, str, str], items: list[Inspection]) -> inspection_pb2.ScoreLine:
            return K.ScoreLine(
                subject=key[1], team=key[2], month=key[0], drawn=len(items),
                scored=sum(1 for i in items if i.state == K.INSPECTION_STATE_SCORED),
                average_score=average([i.total_score for i in items]),
                checks_failed=sum(1 for i in items if i.flagged),
                appeals_upheld=sum(1 for i in items if i.id in upheld))

        return api.GetInspectionSummaryResponse(
            people=[line(k, people[k]) for k in sorted(people)],
            teams=[line(k, teams[k]) for k in sorted(teams)])


def average(totals: list[str]) -> str:
    """Mean of the non-empty decimal totals, two places; empty when there are none."""
    values = [Decimal(t) for t in totals if t]
    if not values:
        return ""
    return str((sum(values, Decimal(0)) / len(values)).quantize(
        scorecards.TWO_PLACES, ROUND_HALF_UP))

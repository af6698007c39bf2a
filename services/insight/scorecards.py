"""Scorecards: criteria with weights, and the default card from the source text (篇5):
服务用语, 服务态度, 语气语调, 客户需求的归纳能力, 应变能力, plus the securities firms' own
checks."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

from branch.insight.v1 import inspection_pb2
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock
from services.common.db import Database
from services.common.errors import NotFound, Violations
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.insight.models import Scorecard

DEFAULT_ID = "default"
DEFAULT_CRITERIA = [
    ("service_wording", "服务用语", 20, False),
    ("attitude", "服务态度", 20, False),
    ("tone", "语气语调", 20, False),
    ("need_grasp", "客户需求的归纳能力", 20, False),
    ("handling_unexpected", "应变能力", 20, False),
    ("no_return_promise", "未承诺收益", 0, True),
    ("risk_disclosed", "已揭示风险", 0, True),
    ("suitability_respected", "遵守适当性", 0, True),
]
TWO_PLACES = Decimal("0.01")


def criteria_to_json(criteria: list[inspection_pb2.Criterion]) -> str:
    return json.dumps([{"key": c.key, "title": c.title, "weight": c.weight, "check": c.check}
                       for c in criteria], ensure_ascii=False)


def criteria_of(row: Scorecard) -> list[inspection_pb2.Criterion]:
    return [inspection_pb2.Criterion(**c) for c in json.loads(row.criteria)]


def to_proto(row: Scorecard) -> inspection_pb2.Scorecard:
    return inspection_pb2.Scorecard(
        id=row.id, title=row.title, criteria=criteria_of(row), active=row.active,
        create_time=ts(row.created_at), created_by=row.created_by)


def weighted_total(criteria: list[inspection_pb2.Criterion], scores: dict[str, int]) -> str:
    """Sum of score x weight / 100 over the scored criteria, two decimals (0.00-100.00)."""
    total = sum((Decimal(scores[c.key]) * c.weight / 100 for c in criteria if not c.check),
                Decimal(0))
    return str(total.quantize(TWO_PLACES, ROUND_HALF_UP))


def check_criteria(v: Violations, criteria: list[inspection_pb2.Criterion]) -> None:
    keys = [c.key for c in criteria]
    v.check(bool(criteria), "scorecard.criteria", "at least one criterion")
    v.check(len(set(keys)) == len(keys), "scorecard.criteria", "keys must be unique")
    for i, c in enumerate(criteria):
        v.check(c.key.replace("_", "").isalnum() and c.key == c.key.lower() and 0 < len(c.key)
                <= 40, f"scorecard.criteria[{i}].key", "lower snake case, 1-40 characters")
        v.check(0 < len(c.title) <= 100, f"scorecard.criteria[{i}].title", "1-100 characters")
        if c.check:
            v.check(c.weight == 0, f"scorecard.criteria[{i}].weight", "0 for a check")
        else:
            v.check(0 < c.weight <= 100, f"scorecard.criteria[{i}].weight", "1 to 100 points")
    scored = [c for c in criteria if not c.check]
    if scored and all(0 < c.weight <= 100 for c in scored):
        v.check(sum(c.weight for c in scored) == 100, "scorecard.criteria",
                "weights of scored criteria must add up to 100")


class Scorecards:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def ensure_default(self) -> None:
        """Creates the default card (active) at first start; every replica may try."""
        async with self.db.transaction() as session:
            if await session.get(Scorecard, DEFAULT_ID) is not None:
                return
            criteria = [inspection_pb2.Criterion(key=k, title=t, weight=w, check=c)
                        for k, t, w, c in DEFAULT_CRITERIA]
            active = (await session.exec(select(Scorecard.id).where(
                col(Scorecard.active)))).first() is None
            session.add(Scorecard(id=DEFAULT_ID, title="综合质检评分表",
                                  criteria=criteria_to_json(criteria), active=active,
                                  created_by="system", created_at=self.clock.now()))

    async def create(self, session: AsyncSession, staff_id: str,
                     msg: inspection_pb2.Scorecard) -> inspection_pb2.Scorecard:
        v = Violations()
        v.check(0 < len(msg.title) <= 200, "scorecard.title", "1-200 characters")
        check_criteria(v, list(msg.criteria))
        v.raise_if_any()
        for row in (await session.exec(select(Scorecard).where(col(Scorecard.active)))).all():
            row.active = False
            session.add(row)
        row = Scorecard(id=new_id(), title=msg.title, criteria=criteria_to_json(
            list(msg.criteria)), active=True, created_by=staff_id, created_at=self.clock.now())
        session.add(row)
        await session.flush()
        return to_proto(row)

    async def get(self, scorecard_id: str) -> inspection_pb2.Scorecard:
        async with self.db.read() as session:
            row = await session.get(Scorecard, scorecard_id)
        if row is None:
            raise NotFound("scorecard {scorecard_id} not found", scorecard_id=scorecard_id)
        return to_proto(row)

    async def active(self, session: AsyncSession) -> Scorecard:
        row = (await session.exec(select(Scorecard).where(col(Scorecard.active)))).first()
        return row or await session.get(Scorecard, DEFAULT_ID)  # type: ignore[return-value]

    async def list(self, size: int, token: str) -> tuple[list[inspection_pb2.Scorecard], str]:
        limit = page_size(size)
        after = decode_token(token)
        async with self.db.read() as session:
            query = select(Scorecard).order_by(col(Scorecard.id)).limit(limit + 1)
            if after:
                query = query.where(col(Scorecard.id) > str(after[0]))
            rows = list((await session.exec(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return [to_proto(r) for r in rows], encode_token(rows[-1].id) if more else ""

"""The shift lead's duty log (值班日志, 篇5): append-only; a correction is a new entry."""

from __future__ import annotations

from datetime import date, tzinfo

from branch.insight.v1 import duty_log_pb2
from branch.insight.v1 import insight_service_pb2 as api
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock, local_today
from services.common.db import Database
from services.common.errors import InvalidArgument, Violations
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.insight.models import DutyLogEntry

MAX_TEXT = 8000


def to_proto(row: DutyLogEntry) -> duty_log_pb2.DutyLogEntry:
    return duty_log_pb2.DutyLogEntry(
        id=row.id, author_id=row.author_id, shift_day=row.shift_day.isoformat(),
        category=row.category, text=row.text, create_time=ts(row.created_at))


class DutyLog:
    def __init__(self, db: Database, clock: Clock, tz: tzinfo) -> None:
        self.db = db
        self.clock = clock
        self.tz = tz

    async def append(self, session: AsyncSession, author_id: str,
                     msg: duty_log_pb2.DutyLogEntry) -> duty_log_pb2.DutyLogEntry:
        """Appends an entry for today's shift (branch-local). Raises InvalidArgument naming
        entry.text or entry.category."""
        v = Violations()
        v.check(0 < len(msg.text.strip()) <= MAX_TEXT, "entry.text", "1-{max_text} characters",
                max_text=MAX_TEXT)
        v.check(len(msg.category) <= 40, "entry.category", "at most 40 characters")
        v.raise_if_any()
        row = DutyLogEntry(id=new_id(), author_id=author_id,
                           shift_day=local_today(self.clock, self.tz),
                           category=msg.category or "note", text=msg.text.strip(),
                           created_at=self.clock.now())
        session.add(row)
        await session.flush()
        return to_proto(row)

    async def list(self, req: api.ListDutyLogEntriesRequest) -> api.ListDutyLogEntriesResponse:
        limit = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(DutyLogEntry).order_by(col(DutyLogEntry.id)).limit(limit + 1)
        if req.shift_day:
            try:
                day = date.fromisoformat(req.shift_day)
            except ValueError:
                raise InvalidArgument({"shift_day": "a date, YYYY-MM-DD"}) from None
            query = query.where(DutyLogEntry.shift_day == day)
        if after:
            query = query.where(col(DutyLogEntry.id) > str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return api.ListDutyLogEntriesResponse(
            entries=[to_proto(r) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "")

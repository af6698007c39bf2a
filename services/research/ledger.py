"""The distribution ledger (append-only) and the reach of each note computed from it."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from branch.research.v1 import distribution_pb2
from branch.research.v1 import research_service_pb2 as api
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.clock import Clock
from services.common.db import Database
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Violations
from services.common.ids import new_id
from services.common.pagination import encode_token, page_size
from services.common.protos import from_ts, ts
from services.research import convert
from services.research.checks import int_after, time_id_after
from services.research.models import LedgerEntry, Note, NoteRevision

K = distribution_pb2
ONSITE_CHANNEL = "onsite_consultation"
REACH_KINDS = (
    K.DISTRIBUTION_RECORD_KIND_RELAYS_PLANNED,
    K.DISTRIBUTION_RECORD_KIND_DELIVERED,
    K.DISTRIBUTION_RECORD_KIND_ACKNOWLEDGED,
    K.DISTRIBUTION_RECORD_KIND_RELAYS_CANCELLED,
)
CSV_COLUMNS = [
    "sequence", "kind", "note_id", "revision", "actor_id", "client_id", "channel", "relay_id",
    "occur_time", "record_time", "source_event_id", "count", "withheld", "detail",
    # on every row: who approved that revision, and when (from the ledger's APPROVED entry)
    "approved_by", "approve_time",
    # the title of that revision
    "title",
]
# A cell a spreadsheet would read as a formula gets a leading apostrophe (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_BATCH = 500
MAX_EXPORT_PERIOD = timedelta(days=6 * 366)


async def record(
    session: AsyncSession,
    *,
    kind: int,
    note_id: str,
    revision: int,
    occurred_at: datetime,
    now: datetime,
    actor_id: str = "",
    client_id: str = "",
    channel: str = "",
    relay_id: str = "",
    source_event_id: str = "",
    count: int = 0,
    withheld: int = 0,
    detail: str = "",
) -> LedgerEntry:
    """Append one entry in the caller's transaction. There is no update or delete."""
    row = LedgerEntry(
        kind=kind, note_id=note_id, revision=revision, actor_id=actor_id[:100],
        client_id=client_id[:36], channel=channel[:40], relay_id=relay_id[:64],
        occurred_at=occurred_at, recorded_at=now,
        source_event_id=source_event_id or f"research:{new_id()}",
        count=count, withheld=withheld, detail=detail[:500],
    )
    session.add(row)
    return row


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromTimedelta(timedelta(seconds=round(seconds, 3)))
    return d


def reach_of(note: Note, rows: list[LedgerEntry]) -> distribution_pb2.NoteReach:
    """Counts are what the events reported: nothing is estimated."""
    planned: dict[int, LedgerEntry] = {}
    first_delivery: dict[str, datetime] = {}
    by_broker: set[str] = set()
    onsite: set[str] = set()
    acked: set[str] = set()
    cancelled = 0
    for row in rows:
        if row.kind == K.DISTRIBUTION_RECORD_KIND_RELAYS_PLANNED:
            planned[row.revision] = row  # the latest plan per revision counts
        elif row.kind == K.DISTRIBUTION_RECORD_KIND_DELIVERED and row.client_id:
            (onsite if row.channel == ONSITE_CHANNEL else by_broker).add(row.client_id)
            seen = first_delivery.get(row.client_id)
            if seen is None or row.occurred_at < seen:
                first_delivery[row.client_id] = row.occurred_at
        elif row.kind == K.DISTRIBUTION_RECORD_KIND_ACKNOWLEDGED and row.client_id:
            acked.add(row.client_id)
        elif row.kind == K.DISTRIBUTION_RECORD_KIND_RELAYS_CANCELLED:
            cancelled += row.count
    targeted_by_vip = sum(p.count for p in planned.values())
    out = distribution_pb2.NoteReach(
        note_id=note.id,
        author_id=note.author_id,
        title=note.title,
        targeted=targeted_by_vip + len(onsite - by_broker),
        relayed=len(first_delivery),
        acknowledged=len(acked),
        withheld_for_suitability=sum(p.withheld for p in planned.values()),
        relayed_by_brokers=len(by_broker),
        delivered_onsite=len(onsite),
        cancelled=cancelled,
    )
    if note.published_at is not None:
        out.publish_time.CopyFrom(ts(note.published_at))
        waits = [max(0.0, (t - note.published_at).total_seconds())
                 for t in first_delivery.values()]
        if waits:
            out.median_time_to_relay.CopyFrom(_duration(statistics.median(waits)))
            out.worst_time_to_relay.CopyFrom(_duration(max(waits)))
    return out


@dataclass
class Ledger:
    db: Database
    clock: Clock

    async def _reaches(
        self, session: AsyncSession, notes: list[Note]
    ) -> list[distribution_pb2.NoteReach]:
        if not notes:
            return []
        rows = (await session.exec(
            select(LedgerEntry)
            .where(col(LedgerEntry.note_id).in_([n.id for n in notes]),
                   col(LedgerEntry.kind).in_(REACH_KINDS))
            .order_by(col(LedgerEntry.seq))
        )).all()
        per_note: dict[str, list[LedgerEntry]] = {}
        for row in rows:
            per_note.setdefault(row.note_id, []).append(row)
        return [reach_of(n, per_note.get(n.id, [])) for n in notes]

    async def get_reach(self, p: Principal, note_id: str) -> distribution_pb2.NoteReach:
        if not note_id:
            raise InvalidArgument({"note_id": "required"})
        async with self.db.read() as session:
            note = await session.get(Note, note_id)
            if note is None:
                raise NotFound("note {note_id} not found", note_id=note_id, reason="NOTE_NOT_FOUND")
            if not _sees_all_reach(p) and note.author_id != p.staff_id:
                raise PermissionDenied("an analyst sees the reach of their own notes",
                                       reason="NOT_AUTHOR")
            if (note.published_at is None and note.author_id != p.staff_id
                    and not p.has("supervisor", "compliance")):
                raise PermissionDenied("this note was never published",
                                       reason="NOTE_NOT_VISIBLE")
            return (await self._reaches(session, [note]))[0]

    async def list_reach(
        self, p: Principal, req: api.ListNoteReachRequest
    ) -> api.ListNoteReachResponse:
        size = page_size(req.page_size)
        after = time_id_after(req.page_token)
        author = req.author_id
        if not _sees_all_reach(p):
            if author and author != p.staff_id:
                raise PermissionDenied("an analyst sees the reach of their own notes",
                                       reason="NOT_AUTHOR")
            author = p.staff_id
        query = (select(Note).where(col(Note.published_at).is_not(None))
                 .order_by(col(Note.published_at).desc(), col(Note.id).desc()).limit(size + 1))
        if author:
            query = query.where(Note.author_id == author)
        if after is not None:
            when, last_id = after
            query = query.where(or_(
                col(Note.published_at) < when,
                (col(Note.published_at) == when) & (col(Note.id) < last_id),
            ))
        async with self.db.read() as session:
            notes = list((await session.exec(query)).all())
            more = len(notes) > size
            notes = notes[:size]
            reaches = await self._reaches(session, notes)
        token = ""
        if more and notes[-1].published_at is not None:
            token = encode_token(notes[-1].published_at.isoformat(), notes[-1].id)
        return api.ListNoteReachResponse(reaches=reaches, next_page_token=token)

    def _period(self, v: Violations, start_ts, end_ts, *, required: bool):  # type: ignore[no-untyped-def]
        start, end = from_ts(start_ts), from_ts(end_ts)
        if required:
            v.check(start is not None, "start_time", "required")
            v.check(end is not None, "end_time", "required")
        if start and end:
            if end <= start:
                v.add("end_time", "must be after start_time")
            elif required and end - start > MAX_EXPORT_PERIOD:
                v.add("end_time", "a period of at most six years")
        return start, end

    def _query(self, note_id: str, start: datetime | None, end: datetime | None):  # type: ignore[no-untyped-def]
        query = select(LedgerEntry).order_by(col(LedgerEntry.seq))
        if note_id:
            query = query.where(LedgerEntry.note_id == note_id)
        if start:
            query = query.where(col(LedgerEntry.occurred_at) >= start)
        if end:
            query = query.where(col(LedgerEntry.occurred_at) < end)
        return query

    async def list_records(
        self, req: api.ListDistributionRecordsRequest
    ) -> api.ListDistributionRecordsResponse:
        size = page_size(req.page_size)
        after = int_after(req.page_token)
        v = Violations()
        start, end = self._period(v, req.start_time, req.end_time, required=False)
        v.raise_if_any()
        query = self._query(req.note_id, start, end).limit(size + 1)
        if after is not None:
            query = query.where(col(LedgerEntry.seq) > after)
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListDistributionRecordsResponse(
            records=[convert.ledger_to_proto(r) for r in rows],
            next_page_token=encode_token(rows[-1].seq) if more else "",
        )

    async def _approvals(
        self, session: AsyncSession, note_ids: set[str]
    ) -> dict[tuple[str, int], tuple[str, datetime]]:
        if not note_ids:
            return {}
        rows = (await session.exec(
            select(LedgerEntry).where(
                col(LedgerEntry.note_id).in_(note_ids),
                LedgerEntry.kind == K.DISTRIBUTION_RECORD_KIND_APPROVED,
            )
        )).all()
        return {(r.note_id, r.revision): (r.actor_id, r.occurred_at) for r in rows}

    async def _titles(
        self, session: AsyncSession, note_ids: set[str]
    ) -> dict[tuple[str, int], str]:
        if not note_ids:
            return {}
        rows = (await session.exec(
            select(NoteRevision.note_id, NoteRevision.revision, NoteRevision.title)
            .where(col(NoteRevision.note_id).in_(note_ids))
        )).all()
        return {(note_id, revision): title for note_id, revision, title in rows}

    async def export_csv(
        self, req: api.ExportDistributionLedgerRequest
    ) -> AsyncIterator[api.ExportDistributionLedgerResponse]:
        v = Violations()
        start, end = self._period(v, req.start_time, req.end_time, required=True)
        v.raise_if_any()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        last = 0
        while True:
            query = (self._query(req.note_id, start, end)
                     .where(col(LedgerEntry.seq) > last).limit(EXPORT_BATCH))
            async with self.db.read() as session:
                rows = list((await session.exec(query)).all())
                approvals = await self._approvals(session, {r.note_id for r in rows})
                titles = await self._titles(session, {r.note_id for r in rows})
            for r in rows:
                approver, approved_at = approvals.get((r.note_id, r.revision), ("", None))
                writer.writerow([_cell(x) for x in (
                    r.seq, K.DistributionRecordKind.Name(r.kind).removeprefix(
                        "DISTRIBUTION_RECORD_KIND_"),
                    r.note_id, r.revision, r.actor_id, r.client_id, r.channel, r.relay_id,
                    _iso(r.occurred_at), _iso(r.recorded_at), r.source_event_id, r.count,
                    r.withheld, r.detail, approver, _iso(approved_at) if approved_at else "",
                    titles.get((r.note_id, r.revision), ""),
                )])
            chunk = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            if chunk:
                yield api.ExportDistributionLedgerResponse(csv_chunk=chunk.encode())
            if len(rows) < EXPORT_BATCH:
                return
            last = rows[-1].seq or last


def _cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula is kept as text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _sees_all_reach(p: Principal) -> bool:
    return p.has("supervisor", "compliance", "admin")



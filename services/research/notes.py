"""Notes: drafts, immutable revisions, compliance review, publication, withdrawal, search."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from branch.research.v1 import distribution_pb2, events_pb2, note_enums_pb2, note_pb2
from branch.research.v1 import research_service_pb2 as api
from sqlalchemy import or_
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import SERVICE_ROLE, Principal
from services.common.clock import Clock, day_start, local_today
from services.common.db import Database
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    Msg,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit
from services.common.fields import check_date
from services.common.ids import new_id
from services.common.pagination import encode_token, page_size
from services.common.protos import enum_name, from_ts, ts
from services.research import convert, ledger
from services.research.checks import int_after, str_after, time_id_after
from services.research.models import Note, NoteReview, NoteRevision, NoteTicker

S = note_pb2
TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")
CONTENT_FIELDS = (
    "title", "summary", "body", "kind", "stances", "risk_level", "valid_until", "audience",
)
EDITABLE = (S.NOTE_STATE_DRAFT, S.NOTE_STATE_RETURNED)
MAX_STANCES = 20
MAX_VALIDITY_DAYS = 366

SUBJECT_PUBLISHED = "branch.research.note.published"
SUBJECT_WITHDRAWN = "branch.research.note.withdrawn"


def sees_all_notes(p: Principal) -> bool:
    """Compliance and supervisors see drafts of every note; nobody else does."""
    return p.has("compliance", "supervisor")


def sees_drafts_of(p: Principal, note: Note) -> bool:
    return sees_all_notes(p) or (p.has("analyst") and note.author_id == p.staff_id)


def sees_past_notes(p: Principal) -> bool:
    """Analysts, admins and other services also see notes after their publication ended
    (withdrawn, superseded, expired); never a note that was not published."""
    return p.has("analyst", "admin", SERVICE_ROLE)


@dataclass
class Content:
    title: str
    summary: str
    body: str
    kind: int
    stances: list[tuple[str, int]]
    risk_level: int
    valid_until: date
    audience: int


@dataclass
class Notes:
    db: Database
    clock: Clock
    tz: ZoneInfo

    # ---- helpers -------------------------------------------------------------------------

    def today(self) -> date:
        return local_today(self.clock, self.tz)

    def end_of(self, day: date) -> datetime:
        """The instant a note valid until `day` stops being valid."""
        return day_start(day + timedelta(days=1), self.tz)

    def _check_content(
        self, v: Violations, msg: note_pb2.Note, fields: set[str], base: Content | None
    ) -> Content:
        c = base or Content("", "", "", 0, [], 0, self.today(), 0)
        if "title" in fields:
            _text(v, "note.title", msg.title, 200)
            c.title = msg.title.strip()
        if "summary" in fields:
            _text(v, "note.summary", msg.summary, 2000)
            c.summary = msg.summary.strip()
        if "body" in fields:
            _text(v, "note.body", msg.body, 100_000)
            c.body = msg.body
        if "kind" in fields:
            v.check(msg.kind in (note_enums_pb2.NOTE_KIND_MARKET, note_enums_pb2.NOTE_KIND_SECTOR,
                                 note_enums_pb2.NOTE_KIND_STOCK),
                    "note.kind", "MARKET, SECTOR or STOCK")
            c.kind = msg.kind
        if "stances" in fields:
            stances: list[tuple[str, int]] = []
            seen: set[str] = set()
            if len(msg.stances) > MAX_STANCES:
                v.add("note.stances", "at most {max_stances}", max_stances=MAX_STANCES)
            for i, st in enumerate(msg.stances):
                ticker = st.ticker.strip().upper()
                if not TICKER.match(ticker):
                    v.add(f"note.stances[{i}].ticker",
                          "must be 1-16 upper-case letters, digits, '.' or '-'")
                elif ticker in seen:
                    v.add(f"note.stances[{i}].ticker", "listed twice")
                if st.stance not in note_enums_pb2.Stance.values() or st.stance == 0:
                    v.add(f"note.stances[{i}].stance", "required")
                seen.add(ticker)
                stances.append((ticker, st.stance))
            c.stances = stances
        if c.kind == note_enums_pb2.NOTE_KIND_STOCK and not c.stances and (
            "stances" in fields or "kind" in fields
        ):
            v.add("note.stances", "a stock note needs a stance for at least one ticker")
        if "risk_level" in fields:
            v.check(1 <= msg.risk_level <= 5, "note.risk_level", "R1 to R5")
            c.risk_level = msg.risk_level
        if "valid_until" in fields:
            day = check_date(v, "note.valid_until", msg.valid_until)
            if day is not None:
                if day < self.today():
                    v.add("note.valid_until", "must not be in the past")
                elif day > self.today() + timedelta(days=MAX_VALIDITY_DAYS):
                    v.add("note.valid_until", "at most {max_validity_days} days ahead",
                          max_validity_days=MAX_VALIDITY_DAYS)
                c.valid_until = day
        if "audience" in fields:
            v.check(msg.audience in (note_enums_pb2.AUDIENCE_ALL_CLIENTS,
                                     note_enums_pb2.AUDIENCE_KEY_CLIENTS,
                                     note_enums_pb2.AUDIENCE_STAFF_ONLY),
                    "note.audience", "ALL_CLIENTS, KEY_CLIENTS or STAFF_ONLY")
            c.audience = msg.audience
        return c

    async def _note(self, session: AsyncSession, note_id: str, *, lock: bool = False) -> Note:
        if not note_id:
            raise InvalidArgument({"id": "required"})
        query = select(Note).where(col(Note.id) == note_id)
        if lock:
            query = query.with_for_update()
        row = (await session.exec(query)).first()
        if row is None:
            raise NotFound("note {note_id} not found", note_id=note_id, reason="NOTE_NOT_FOUND")
        return row

    async def _revision(self, session: AsyncSession, note_id: str, revision: int) -> NoteRevision:
        row = await session.get(NoteRevision, (note_id, revision))
        if row is None:
            raise NotFound("note {note_id} has no revision {revision}", note_id=note_id,
                           revision=revision,
                           reason="REVISION_NOT_FOUND")
        return row

    def _visible(self, p: Principal, note: Note) -> bool:
        if sees_drafts_of(p, note):
            return True
        if sees_past_notes(p) and note.published_at is not None:
            return True
        return note.state == S.NOTE_STATE_PUBLISHED and self.clock.now() < note.valid_until_at

    def _own(self, p: Principal, note: Note) -> None:
        if note.author_id != p.staff_id:
            raise PermissionDenied("only the note's author may do this", reason="NOT_AUTHOR")

    async def _write_revision(
        self, session: AsyncSession, note: Note, content: Content, author_id: str, now: datetime
    ) -> NoteRevision:
        rev = NoteRevision(
            note_id=note.id,
            revision=note.revision,
            title=content.title,
            summary=content.summary,
            body=content.body,
            kind=content.kind,
            stances=convert.stances_to_json(content.stances),
            risk_level=content.risk_level,
            valid_until=content.valid_until,
            audience=content.audience,
            author_id=author_id,
            created_at=now,
        )
        session.add(rev)
        tickers = [t for t, _ in content.stances]
        note.title = content.title
        note.kind = content.kind
        note.risk_level = content.risk_level
        note.audience = content.audience
        note.valid_until = content.valid_until
        note.valid_until_at = self.end_of(content.valid_until)
        note.tickers = convert.tickers_to_column(tickers)
        note.search_text = "\n".join(
            [content.title, content.summary, content.body, " ".join(tickers)]
        ).lower()
        note.updated_at = now
        await session.exec(delete(NoteTicker).where(col(NoteTicker.note_id) == note.id))
        for ticker in tickers:
            session.add(NoteTicker(note_id=note.id, ticker=ticker))
        return rev

    # ---- writing -------------------------------------------------------------------------

    async def create(
        self, session: AsyncSession, p: Principal, msg: note_pb2.Note
    ) -> note_pb2.Note:
        v = Violations()
        content = self._check_content(v, msg, set(CONTENT_FIELDS), None)
        supersedes = None
        if msg.supersedes_note_id:
            supersedes = await session.get(Note, msg.supersedes_note_id)
            if supersedes is None or supersedes.state != S.NOTE_STATE_PUBLISHED:
                v.add("note.supersedes_note_id", "must name a published note")
        v.raise_if_any()
        now = self.clock.now()
        note = Note(
            id=new_id(), author_id=p.staff_id, state=S.NOTE_STATE_DRAFT, revision=1,
            title="", kind=0, risk_level=0, audience=0, valid_until=content.valid_until,
            valid_until_at=now, supersedes_note_id=msg.supersedes_note_id,
            created_at=now, updated_at=now,
        )
        session.add(note)
        await session.flush()
        rev = await self._write_revision(session, note, content, p.staff_id, now)
        return convert.note_to_proto(note, rev, now)

    async def update(
        self, p: Principal, msg: note_pb2.Note, paths: list[str]
    ) -> note_pb2.Note:
        unknown = [x for x in paths if x not in CONTENT_FIELDS]
        if unknown:
            raise InvalidArgument({"update_mask": Msg("cannot update {names}",
                                                      names=', '.join(unknown))})
        fields = set(paths or CONTENT_FIELDS)
        async with self.db.transaction() as session:
            note = await self._note(session, msg.id, lock=True)
            self._own(p, note)
            if note.state not in EDITABLE:
                raise FailedPrecondition(
                    "a {state} note cannot be edited; only drafts and returned notes can (write "
                    "a new note to supersede a published one)",
                    state=Msg(enum_name(S.NoteState, note.state)),
                    reason="NOTE_NOT_EDITABLE",
                )
            current = await self._revision(session, note.id, note.revision)
            base = Content(
                current.title, current.summary, current.body, current.kind,
                [(s.ticker, s.stance) for s in convert.stances_from_json(current.stances)],
                current.risk_level, current.valid_until, current.audience,
            )
            v = Violations()
            content = self._check_content(v, msg, fields, base)
            v.raise_if_any()
            now = self.clock.now()
            note.revision += 1
            note.state = S.NOTE_STATE_DRAFT
            rev = await self._write_revision(session, note, content, p.staff_id, now)
            session.add(note)
            return convert.note_to_proto(note, rev, now)

    async def submit(self, p: Principal, note_id: str) -> note_pb2.Note:
        async with self.db.transaction() as session:
            note = await self._note(session, note_id, lock=True)
            self._own(p, note)
            if note.state == S.NOTE_STATE_SUBMITTED:
                return await self._proto(session, note)
            if note.state == S.NOTE_STATE_RETURNED:
                raise FailedPrecondition("edit the returned note before resubmitting it",
                                         reason="NOTE_RETURNED_UNCHANGED")
            if note.state != S.NOTE_STATE_DRAFT:
                raise FailedPrecondition(
                    "only a draft can be submitted, not a {state} note",
                    state=Msg(enum_name(S.NoteState, note.state)),
                    reason="NOTE_NOT_DRAFT",
                )
            now = self.clock.now()
            if now >= note.valid_until_at:
                raise FailedPrecondition("the note's validity has already ended",
                                         reason="NOTE_EXPIRED")
            note.state = S.NOTE_STATE_SUBMITTED
            note.submitted_at = now
            note.updated_at = now
            session.add(note)
            return await self._proto(session, note)

    async def _review(
        self, p: Principal, note_id: str, revision: int, comments: str, decision: int
    ) -> note_pb2.Note:
        v = Violations()
        v.check(revision >= 0, "revision", "must not be negative")
        if decision == S.REVIEW_DECISION_RETURNED:
            _text(v, "comments", comments, 4000)
        elif len(comments) > 4000:
            v.add("comments", "at most 4000 characters")
        v.raise_if_any()
        async with self.db.transaction() as session:
            note = await self._note(session, note_id, lock=True)
            if note.state != S.NOTE_STATE_SUBMITTED:
                raise FailedPrecondition(
                    "only a submitted note can be reviewed, not a {state} note",
                    state=Msg(enum_name(S.NoteState, note.state)),
                    reason="NOTE_NOT_SUBMITTED",
                )
            if revision and revision != note.revision:
                raise FailedPrecondition(
                    "revision {revision} is not the note's current revision {current}",
                    revision=revision, current=note.revision,
                    reason="REVISION_MISMATCH",
                )
            authors = set(
                (await session.exec(
                    select(NoteRevision.author_id).where(col(NoteRevision.note_id) == note.id)
                )).all()
            )
            if p.staff_id == note.author_id or p.staff_id in authors:
                raise PermissionDenied("compliance may not review their own note",
                                       reason="SELF_REVIEW")
            now = self.clock.now()
            session.add(NoteReview(note_id=note.id, revision=note.revision,
                                   reviewer_id=p.staff_id, decision=decision,
                                   comments=comments, reviewed_at=now))
            note.updated_at = now
            if decision == S.REVIEW_DECISION_APPROVED:
                note.state = S.NOTE_STATE_APPROVED
                note.approved_by = p.staff_id
                note.approved_revision = note.revision
                note.approved_at = now
                await ledger.record(
                    session, kind=distribution_pb2.DISTRIBUTION_RECORD_KIND_APPROVED,
                    note_id=note.id, revision=note.revision, actor_id=p.staff_id,
                    occurred_at=now, now=now, detail=comments[:500],
                )
            else:
                note.state = S.NOTE_STATE_RETURNED
                note.review_comments = comments
            session.add(note)
            return await self._proto(session, note)

    async def approve(self, p: Principal, req: api.ApproveNoteRequest) -> note_pb2.Note:
        return await self._review(p, req.id, req.revision, req.comments,
                                  S.REVIEW_DECISION_APPROVED)

    async def return_(self, p: Principal, req: api.ReturnNoteRequest) -> note_pb2.Note:
        return await self._review(p, req.id, req.revision, req.comments,
                                  S.REVIEW_DECISION_RETURNED)

    async def publish(self, p: Principal, note_id: str) -> note_pb2.Note:
        async with self.db.transaction() as session:
            note = await self._note(session, note_id, lock=True)
            if not sees_all_notes(p):
                self._own(p, note)
            if note.state == S.NOTE_STATE_PUBLISHED:
                return await self._proto(session, note)
            if note.state != S.NOTE_STATE_APPROVED:
                raise FailedPrecondition(
                    "only an approved note can be published, not a {state} note",
                    state=Msg(enum_name(S.NoteState, note.state)),
                    reason="NOTE_NOT_APPROVED",
                )
            if note.approved_revision != note.revision:  # edits after approval are refused
                raise FailedPrecondition("the current revision is not the approved one",
                                         reason="REVISION_NOT_APPROVED")
            now = self.clock.now()
            if now >= note.valid_until_at:
                raise FailedPrecondition("the note's validity has already ended",
                                         reason="NOTE_EXPIRED")
            rev = await self._revision(session, note.id, note.revision)
            note.state = S.NOTE_STATE_PUBLISHED
            note.published_revision = note.revision
            note.published_at = now
            note.updated_at = now
            session.add(note)
            await ledger.record(
                session, kind=distribution_pb2.DISTRIBUTION_RECORD_KIND_PUBLISHED,
                note_id=note.id, revision=note.revision, actor_id=p.staff_id,
                occurred_at=now, now=now, detail=f"approved_by={note.approved_by}",
            )
            out = convert.note_to_proto(note, rev, now)
            emit(session, subject=SUBJECT_PUBLISHED, about=note.id, now=now,
                 message=events_pb2.NotePublished(
                     note_id=note.id, revision=note.revision, title=rev.title, kind=rev.kind,  # type: ignore[arg-type]
                     tickers=list(out.tickers), stances=list(out.stances),
                     risk_level=rev.risk_level, audience=rev.audience,  # type: ignore[arg-type]
                     valid_until=ts(note.valid_until_at), publish_time=ts(now),
                     author_id=note.author_id, approved_by=note.approved_by,
                     summary=rev.summary,
                 ))
            if note.supersedes_note_id:
                old = (await session.exec(
                    select(Note).where(col(Note.id) == note.supersedes_note_id).with_for_update()
                )).first()
                if old is not None and old.state == S.NOTE_STATE_PUBLISHED:
                    old.state = S.NOTE_STATE_SUPERSEDED
                    old.superseded_by_note_id = note.id
                    old.withdrawn_at = now
                    old.updated_at = now
                    old.withdraw_reason = f"superseded by {note.id}"
                    session.add(old)
                    await self._withdrawn(session, old, p.staff_id, now, superseded_by=note.id)
            return out

    async def _withdrawn(
        self, session: AsyncSession, note: Note, actor: str, now: datetime, superseded_by: str = ""
    ) -> None:
        kind = (distribution_pb2.DISTRIBUTION_RECORD_KIND_SUPERSEDED if superseded_by
                else distribution_pb2.DISTRIBUTION_RECORD_KIND_WITHDRAWN)
        await ledger.record(
            session, kind=kind, note_id=note.id, revision=note.published_revision,
            actor_id=actor, occurred_at=now, now=now, detail=note.withdraw_reason[:500],
        )
        emit(session, subject=SUBJECT_WITHDRAWN, about=note.id, now=now,
             message=events_pb2.NoteWithdrawn(
                 note_id=note.id, revision=note.published_revision,
                 reason=note.withdraw_reason, superseded_by_note_id=superseded_by,
                 withdraw_time=ts(now),
             ))

    async def withdraw(self, p: Principal, note_id: str, reason: str) -> note_pb2.Note:
        v = Violations()
        if not note_id:
            v.add("id", "required")
        _text(v, "reason", reason, 500)
        v.raise_if_any()
        async with self.db.transaction() as session:
            note = await self._note(session, note_id, lock=True)
            if not p.has("compliance", "supervisor"):
                self._own(p, note)
            if note.state in (S.NOTE_STATE_WITHDRAWN, S.NOTE_STATE_SUPERSEDED):
                raise FailedPrecondition("the note is already withdrawn",
                                         reason="NOTE_WITHDRAWN")
            was_published = note.state == S.NOTE_STATE_PUBLISHED
            now = self.clock.now()
            note.state = S.NOTE_STATE_WITHDRAWN
            note.withdraw_reason = reason.strip()
            note.withdrawn_at = now
            note.updated_at = now
            session.add(note)
            if was_published:
                await self._withdrawn(session, note, p.staff_id, now)
            return await self._proto(session, note)

    # ---- reading -------------------------------------------------------------------------

    async def _proto(self, session: AsyncSession, note: Note) -> note_pb2.Note:
        rev = await self._revision(session, note.id, note.revision)
        return convert.note_to_proto(note, rev, self.clock.now())

    async def get(self, p: Principal, note_id: str, revision: int) -> note_pb2.Note:
        if revision < 0:
            raise InvalidArgument({"revision": "must not be negative"})
        async with self.db.read() as session:
            note = await self._note(session, note_id)
            if not self._visible(p, note):
                raise PermissionDenied("this note is not visible to the caller",
                                       reason="NOTE_NOT_VISIBLE")
            number = revision or note.revision
            if number != note.revision and not sees_drafts_of(p, note):
                raise PermissionDenied("earlier revisions are visible to the author, "
                                       "compliance and supervisors", reason="NOTE_NOT_VISIBLE")
            rev = await self._revision(session, note.id, number)
            return convert.note_to_proto(note, rev, self.clock.now())

    async def list_revisions(
        self, p: Principal, req: api.ListNoteRevisionsRequest
    ) -> api.ListNoteRevisionsResponse:
        size = page_size(req.page_size)
        after = int_after(req.page_token)
        async with self.db.read() as session:
            if not req.note_id:
                raise InvalidArgument({"note_id": "required"})
            note = await self._note(session, req.note_id)
            if not sees_drafts_of(p, note):
                raise PermissionDenied("revisions are visible to the author, compliance and "
                                       "supervisors", reason="NOTE_NOT_VISIBLE")
            query = (select(NoteRevision).where(col(NoteRevision.note_id) == note.id)
                     .order_by(col(NoteRevision.revision)).limit(size + 1))
            if after is not None:
                query = query.where(col(NoteRevision.revision) > after)
            revs = list((await session.exec(query)).all())
            more = len(revs) > size
            revs = revs[:size]
            reviews = {
                r.revision: r for r in (await session.exec(
                    select(NoteReview).where(col(NoteReview.note_id) == note.id)
                )).all()
            }
        return api.ListNoteRevisionsResponse(
            revisions=[convert.revision_to_proto(r, reviews.get(r.revision)) for r in revs],
            next_page_token=encode_token(revs[-1].revision) if more else "",
        )

    async def list(self, p: Principal, req: api.ListNotesRequest) -> api.ListNotesResponse:
        size = page_size(req.page_size)
        after = str_after(req.page_token)
        v = Violations()
        ticker = req.ticker.strip().upper()
        if ticker and not TICKER.match(ticker):
            v.add("ticker", "must be 1-16 upper-case letters, digits, '.' or '-'")
        if req.kind and req.kind not in note_enums_pb2.NoteKind.values():
            v.add("kind", "unknown kind")
        if req.state and req.state not in S.NoteState.values():
            v.add("state", "unknown state")
        if len(req.text) > 200:
            v.add("text", "at most 200 characters")
        start, end = from_ts(req.publish_start_time), from_ts(req.publish_end_time)
        if start and end and end <= start:
            v.add("publish_end_time", "must be after publish_start_time")
        v.raise_if_any()
        now = self.clock.now()
        query = select(Note).order_by(col(Note.id).desc()).limit(size + 1)
        if after is not None:
            query = query.where(col(Note.id) < after)
        if ticker:
            query = query.where(col(Note.id).in_(
                select(NoteTicker.note_id).where(col(NoteTicker.ticker) == ticker)
            ))
        if req.kind:
            query = query.where(col(Note.kind) == req.kind)
        if req.author_id:
            query = query.where(col(Note.author_id) == req.author_id)
        if req.state:
            query = query.where(col(Note.state) == req.state)
        if req.text.strip():
            query = query.where(
                col(Note.search_text).contains(req.text.strip().lower(), autoescape=True)
            )
        if start:
            query = query.where(col(Note.published_at) >= start)
        if end:
            query = query.where(col(Note.published_at) < end)
        if not sees_all_notes(p) and not sees_past_notes(p):
            query = query.where(col(Note.state) == S.NOTE_STATE_PUBLISHED,
                                col(Note.valid_until_at) > now)
        else:
            if not sees_all_notes(p):  # published once; and an analyst's own drafts
                ever_published = col(Note.published_at).is_not(None)
                query = query.where(or_(col(Note.author_id) == p.staff_id, ever_published)
                                    if p.has("analyst") else ever_published)
            if not req.include_expired:
                query = query.where(or_(col(Note.state) != S.NOTE_STATE_PUBLISHED,
                                        col(Note.valid_until_at) > now))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
            more = len(rows) > size
            rows = rows[:size]
            notes = await self._summaries(session, rows)
        return api.ListNotesResponse(
            notes=notes, next_page_token=encode_token(rows[-1].id) if more else ""
        )

    async def _summaries(
        self, session: AsyncSession, rows: builtins.list[Note]
    ) -> builtins.list[note_pb2.Note]:
        """Notes at their current revision, without body."""
        if not rows:
            return []
        revs = {
            (r.note_id, r.revision): r for r in (await session.exec(
                select(NoteRevision).where(col(NoteRevision.note_id).in_([n.id for n in rows]))
            )).all()
        }
        now = self.clock.now()
        out = []
        for note in rows:
            msg = convert.note_to_proto(note, revs[(note.id, note.revision)], now)
            msg.body = ""
            out.append(msg)
        return out

    async def review_queue(self, req: api.ListReviewQueueRequest) -> api.ListReviewQueueResponse:
        size = page_size(req.page_size)
        after = time_id_after(req.page_token)
        query = (select(Note).where(col(Note.state) == S.NOTE_STATE_SUBMITTED)
                 .order_by(col(Note.submitted_at), col(Note.id)).limit(size + 1))
        if after is not None:
            when, last_id = after
            query = query.where(or_(
                col(Note.submitted_at) > when,
                (col(Note.submitted_at) == when) & (col(Note.id) > last_id),
            ))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
            more = len(rows) > size
            rows = rows[:size]
            notes = await self._summaries(session, rows)
        token = ""
        if more and rows[-1].submitted_at is not None:
            token = encode_token(rows[-1].submitted_at.isoformat(), rows[-1].id)
        return api.ListReviewQueueResponse(notes=notes, next_page_token=token)




def _text(v: Violations, field: str, value: str, max_len: int) -> None:
    if not value.strip():
        v.add(field, "required")
    elif len(value) > max_len:
        v.add(field, "at most {max_len} characters", max_len=max_len)

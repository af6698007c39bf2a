"""Rows to protobuf messages, and the small codecs the rows use."""

from __future__ import annotations

import json
from datetime import datetime

from branch.research.v1 import distribution_pb2, note_enums_pb2, note_pb2, research_request_pb2

from services.common.protos import ts
from services.research import models


def stances_to_json(stances: list[tuple[str, int]]) -> str:
    return json.dumps([[t, s] for t, s in stances])


def stances_from_json(text: str) -> list[note_enums_pb2.TickerStance]:
    return [note_enums_pb2.TickerStance(ticker=t, stance=s) for t, s in json.loads(text or "[]")]


def tickers_to_column(tickers: list[str]) -> str:
    return "," + ",".join(tickers) + "," if tickers else ""


def tickers_from_column(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def note_to_proto(
    note: models.Note, rev: models.NoteRevision, now: datetime
) -> note_pb2.Note:
    stances = stances_from_json(rev.stances)
    msg = note_pb2.Note(
        id=note.id,
        revision=rev.revision,
        state=note.state,  # type: ignore[arg-type]
        title=rev.title,
        summary=rev.summary,
        body=rev.body,
        kind=rev.kind,  # type: ignore[arg-type]
        stances=stances,
        tickers=[s.ticker for s in stances],
        risk_level=rev.risk_level,  # type: ignore[arg-type]
        valid_until=rev.valid_until.isoformat(),
        audience=rev.audience,  # type: ignore[arg-type]
        supersedes_note_id=note.supersedes_note_id,
        author_id=note.author_id,
        superseded_by_note_id=note.superseded_by_note_id,
        approved_by=note.approved_by,
        approved_revision=note.approved_revision,
        published_revision=note.published_revision,
        review_comments=note.review_comments,
        withdraw_reason=note.withdraw_reason,
        expired=note.state == note_pb2.NOTE_STATE_PUBLISHED and now >= note.valid_until_at,
        valid_until_time=ts(note.valid_until_at),
        create_time=ts(note.created_at),
        update_time=ts(note.updated_at),
    )
    for name, value in (
        ("submit_time", note.submitted_at),
        ("approve_time", note.approved_at),
        ("publish_time", note.published_at),
        ("withdraw_time", note.withdrawn_at),
    ):
        if value is not None:
            getattr(msg, name).CopyFrom(ts(value))
    return msg


def revision_to_proto(
    rev: models.NoteRevision, review: models.NoteReview | None
) -> note_pb2.NoteRevision:
    msg = note_pb2.NoteRevision(
        note_id=rev.note_id,
        revision=rev.revision,
        title=rev.title,
        summary=rev.summary,
        body=rev.body,
        kind=rev.kind,  # type: ignore[arg-type]
        stances=stances_from_json(rev.stances),
        risk_level=rev.risk_level,  # type: ignore[arg-type]
        valid_until=rev.valid_until.isoformat(),
        audience=rev.audience,  # type: ignore[arg-type]
        author_id=rev.author_id,
        create_time=ts(rev.created_at),
    )
    if review is not None:
        msg.review_decision = review.decision  # type: ignore[assignment]
        msg.reviewer_id = review.reviewer_id
        msg.review_comments = review.comments
        msg.review_time.CopyFrom(ts(review.reviewed_at))
    return msg


def request_to_proto(
    row: models.ResearchRequest, now: datetime
) -> research_request_pb2.ResearchRequest:
    answered = row.state == research_request_pb2.RESEARCH_REQUEST_STATE_ANSWERED
    msg = research_request_pb2.ResearchRequest(
        id=row.id,
        state=row.state,  # type: ignore[arg-type]
        source=row.source,  # type: ignore[arg-type]
        asker_id=row.asker_id,
        client_id=row.client_id,
        advisory_id=row.advisory_id or "",
        tickers=tickers_from_column(row.tickers),
        question=row.question,
        due_time=ts(row.due_at),
        overdue=not answered and now >= row.due_at,
        claimed_by=row.claimed_by,
        answer=row.answer,
        answer_note_id=row.answer_note_id,
        answered_by=row.answered_by,
        create_time=ts(row.created_at),
    )
    if row.claimed_at is not None:
        msg.claim_time.CopyFrom(ts(row.claimed_at))
    if row.answered_at is not None:
        msg.answer_time.CopyFrom(ts(row.answered_at))
    return msg


def ledger_to_proto(row: models.LedgerEntry) -> distribution_pb2.DistributionRecord:
    return distribution_pb2.DistributionRecord(
        sequence=row.seq or 0,
        kind=row.kind,  # type: ignore[arg-type]
        note_id=row.note_id,
        revision=row.revision,
        actor_id=row.actor_id,
        client_id=row.client_id,
        channel=row.channel,
        relay_id=row.relay_id,
        occur_time=ts(row.occurred_at),
        record_time=ts(row.recorded_at),
        source_event_id=row.source_event_id,
        count=row.count,
        detail=row.detail,
    )

"""Research tables. Revisions, reviews and the distribution ledger are append-only."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime
from services.common.names import PersonNameBase


class Note(SQLModel, table=True):
    """The note's state, plus a search copy of its latest revision's content."""

    __tablename__ = "research_note"
    __table_args__ = (
        Index("ix_research_note_state", "state", "id"),
        Index("ix_research_note_author", "author_id", "id"),
        Index("ix_research_note_published", "published_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    author_id: str = Field(max_length=100)
    state: int
    revision: int
    # search copy of the latest revision
    title: str = Field(max_length=200)
    kind: int
    risk_level: int
    audience: int
    valid_until: date
    valid_until_at: datetime = Field(sa_type=UtcDateTime)
    # ",T1,T2," so a ticker search is a LIKE on ",T1,"
    tickers: str = Field(default="", max_length=400)
    search_text: str = Field(default="")
    supersedes_note_id: str = Field(default="", max_length=36)
    superseded_by_note_id: str = Field(default="", max_length=36)
    approved_by: str = Field(default="", max_length=100)
    approved_revision: int = 0
    published_revision: int = 0
    review_comments: str = Field(default="")
    withdraw_reason: str = Field(default="")
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class NoteTicker(SQLModel, table=True):
    """Ticker index of each note's latest revision."""

    __tablename__ = "research_note_ticker"
    __table_args__ = (Index("ix_research_note_ticker_ticker", "ticker", "note_id"),)

    note_id: str = Field(primary_key=True, max_length=36, foreign_key="research_note.id")
    ticker: str = Field(primary_key=True, max_length=16)


class NoteRevision(SQLModel, table=True):
    """Immutable: written once, never updated."""

    __tablename__ = "research_note_revision"

    note_id: str = Field(primary_key=True, max_length=36, foreign_key="research_note.id")
    revision: int = Field(primary_key=True)
    title: str = Field(max_length=200)
    summary: str
    body: str
    kind: int
    # JSON list of [ticker, stance]
    stances: str
    risk_level: int
    valid_until: date
    audience: int
    author_id: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class NoteReview(SQLModel, table=True):
    """One compliance decision on one revision; append-only."""

    __tablename__ = "research_note_review"
    __table_args__ = (UniqueConstraint("note_id", "revision", name="uq_research_note_review"),)

    id: int | None = Field(default=None, primary_key=True)
    note_id: str = Field(max_length=36, foreign_key="research_note.id")
    revision: int
    reviewer_id: str = Field(max_length=100)
    decision: int
    comments: str = ""
    reviewed_at: datetime = Field(sa_type=UtcDateTime)


class ResearchRequest(SQLModel, table=True):
    __tablename__ = "research_request"
    __table_args__ = (
        Index("ix_research_request_queue", "state", "due_at", "id"),
        Index("ix_research_request_asker", "asker_id", "due_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    state: int
    source: int
    asker_id: str = Field(max_length=100)
    client_id: str = Field(default="", max_length=36)
    # unique: a redelivered or repeated advisory event queues the question once
    advisory_id: str | None = Field(default=None, max_length=64, unique=True)
    tickers: str = Field(default="", max_length=400)
    question: str
    due_at: datetime = Field(sa_type=UtcDateTime)
    claimed_by: str = Field(default="", max_length=100)
    claimed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answer: str = ""
    answer_note_id: str = Field(default="", max_length=36)
    answered_by: str = Field(default="", max_length=100)
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # set once, by whichever replica's timer raised the overdue event
    overdue_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime)


class LedgerEntry(SQLModel, table=True):
    """The distribution ledger: append-only, kept at least five years; no code updates or
    deletes a row, and the migration adds triggers that refuse it."""

    __tablename__ = "research_ledger"
    __table_args__ = (
        Index("ix_research_ledger_note", "note_id", "seq"),
        Index("ix_research_ledger_time", "occurred_at", "seq"),
        UniqueConstraint("source_event_id", "kind", "note_id", name="uq_research_ledger_source"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    kind: int
    note_id: str = Field(max_length=36)
    revision: int = 0
    actor_id: str = Field(default="", max_length=100)
    client_id: str = Field(default="", max_length=36)
    channel: str = Field(default="", max_length=40)
    relay_id: str = Field(default="", max_length=64)
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    # own records have a generated id here, so the unique constraint never clashes
    source_event_id: str = Field(max_length=100)
    count: int = 0
    withheld: int = 0
    detail: str = Field(default="", max_length=500)


class PersonName(PersonNameBase, table=True):
    """Clients' and staff members' display names from the directory's events
    (services/common/names.py): responses carry them beside the ids."""

    __tablename__ = "research_person_name"

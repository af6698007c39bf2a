"""Insight tables. The read model (interaction, ticket, activity) is fed only by other
services' events; inspections, appeals, the duty log and reports are insight's own records.
The duty log is append-only."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime
from services.common.names import PersonNameBase


class Scorecard(SQLModel, table=True):
    __tablename__ = "insight_scorecard"

    id: str = Field(primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    # JSON list of {"key", "title", "weight", "check"}
    criteria: str
    active: bool = False
    created_by: str = Field(default="", max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class Interaction(SQLModel, table=True):
    """The sampling pool: one row per hotline ticket resolved, callback made or advisory
    answered, with the person who handled it and the branch-local month."""

    __tablename__ = "insight_interaction"
    __table_args__ = (Index("ix_insight_interaction_month_person", "month", "person_id"),)

    id: str = Field(primary_key=True, max_length=80)  # "<kind>:<interaction id>"
    kind: int
    interaction_id: str = Field(max_length=64)
    person_id: str = Field(max_length=100)
    team: str = Field(max_length=40)
    client_id: str = Field(default="", max_length=64)
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    month: str = Field(max_length=7)


class Ticket(SQLModel, table=True):
    """Each hotline ticket's life, for waiting work by age band. Replicas share one consumer,
    so a ticket's resolution may be applied before its opening: either event creates the row
    and each sets its own column."""

    __tablename__ = "insight_ticket"

    ticket_id: str = Field(primary_key=True, max_length=64)
    owner_id: str = Field(default="", max_length=100)
    opened_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Activity(SQLModel, table=True):
    """One counted fact per event (kind e.g. 'accepted', 'callback', 'visit'), with its
    branch-local day; report figures are sums over a period."""

    __tablename__ = "insight_activity"
    __table_args__ = (Index("ix_insight_activity_kind_day", "kind", "local_day"),)

    event_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=40)
    person_id: str = Field(default="", max_length=100)
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    local_day: date
    amount: int = 1


class Sample(SQLModel, table=True):
    """The claim on a person's monthly sample: drawn once, whichever replica gets there."""

    __tablename__ = "insight_sample"
    __table_args__ = (UniqueConstraint("person_id", "month", name="uq_insight_sample"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(max_length=100)
    month: str = Field(max_length=7)
    drawn: int = 0
    drawn_at: datetime = Field(sa_type=UtcDateTime)


class Inspection(SQLModel, table=True):
    __tablename__ = "insight_inspection"
    __table_args__ = (
        UniqueConstraint("kind", "interaction_id", name="uq_insight_inspection_interaction"),
        Index("ix_insight_inspection_month_person", "month", "person_id"),
        Index("ix_insight_inspection_state", "state", "drawn_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    person_id: str = Field(max_length=100)
    team: str = Field(max_length=40)
    month: str = Field(max_length=7)
    kind: int
    interaction_id: str = Field(max_length=64)
    client_id: str = Field(default="", max_length=64)
    interaction_at: datetime = Field(sa_type=UtcDateTime)
    scorecard_id: str = Field(max_length=36)
    state: int
    inspector_id: str = Field(default="", max_length=100)
    # JSON list of {"criterion_key", "score", "passed", "comment"}
    scores: str = Field(default="[]")
    total_score: str = Field(default="", max_length=10)
    flagged: bool = False
    comment: str = Field(default="")
    drawn_at: datetime = Field(sa_type=UtcDateTime)
    scored_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Appeal(SQLModel, table=True):
    __tablename__ = "insight_appeal"
    __table_args__ = (Index("ix_insight_appeal_inspection", "inspection_id"),)

    id: str = Field(primary_key=True, max_length=36)
    inspection_id: str = Field(max_length=36)
    person_id: str = Field(max_length=100)
    reason: str
    state: int
    decider_id: str = Field(default="", max_length=100)
    decision: str = Field(default="")
    revised_score: str = Field(default="", max_length=10)
    created_at: datetime = Field(sa_type=UtcDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class DutyLogEntry(SQLModel, table=True):
    __tablename__ = "insight_duty_log"
    __table_args__ = (Index("ix_insight_duty_log_day", "shift_day", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    author_id: str = Field(max_length=100)
    shift_day: date
    category: str = Field(max_length=40)
    text: str
    created_at: datetime = Field(sa_type=UtcDateTime)


class Report(SQLModel, table=True):
    """A stored report; unique (kind, period_start) is the claim that makes scheduled
    generation happen once across replicas."""

    __tablename__ = "insight_report"
    __table_args__ = (UniqueConstraint("kind", "period_start", name="uq_insight_report_period"),)

    id: str = Field(primary_key=True, max_length=36)
    kind: int
    period_start: date
    period_end: date
    figures: bytes
    generated_by: str = Field(max_length=100)
    generated_at: datetime = Field(sa_type=UtcDateTime)


class Campaign(SQLModel, table=True):
    """Callback campaigns' quotas (from branch.remote.campaign.created): the callback targets
    of performance reviews."""

    __tablename__ = "insight_campaign"

    campaign_id: str = Field(primary_key=True, max_length=64)
    daily_quota: int = 0
    start_date: date | None = None
    end_date: date | None = None
    # ",a1,a2," so one agent's campaigns are a LIKE on ",a1,"
    agent_ids: str = Field(default="")


class PerformanceReview(SQLModel, table=True):
    __tablename__ = "insight_performance_review"
    __table_args__ = (UniqueConstraint("person_id", "month", name="uq_insight_review_month"),)

    id: str = Field(primary_key=True, max_length=36)
    person_id: str = Field(max_length=100)
    team: str = Field(max_length=40)
    month: str = Field(max_length=7)
    reviewer_id: str = Field(max_length=100)
    state: int
    # JSON list of {"metric", "target", "source"}; actuals are computed when read
    targets: str = Field(default="[]")
    interview_summary: str = Field(default="")
    improvement_plan: str = Field(default="")
    interviewed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    appeal_reason: str = Field(default="")
    appeal_decision: str = Field(default="")
    created_at: datetime = Field(sa_type=UtcDateTime)


class KeyEvent(SQLModel, table=True):
    """Append-only key events of a review (关键事件法)."""

    __tablename__ = "insight_key_event"
    __table_args__ = (Index("ix_insight_key_event_review", "review_id", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    review_id: str = Field(max_length=36)
    kind: int
    occurred_day: date
    description: str
    recorded_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class PersonName(PersonNameBase, table=True):
    """Clients' and staff members' display names from the directory's events
    (services/common/names.py): responses carry them beside the ids."""

    __tablename__ = "insight_person_name"


class InspectionSettingsRow(SQLModel, table=True):
    """The branch's inspection settings: one row, key "branch", written by one upsert."""

    __tablename__ = "insight_inspection_settings"

    key: str = Field(primary_key=True, max_length=20)
    samples_per_person: int
    updated_by: str = Field(default="", max_length=100)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class WeeklySummaryRow(SQLModel, table=True):
    """The quality inspector's summary of one ISO week (branch time), keyed by "YYYY-Www"."""

    __tablename__ = "insight_weekly_summary"

    week: str = Field(primary_key=True, max_length=8)
    week_start: date
    summary: str
    common_faults: str  # JSON list of {"criterion_key", "note"}
    training_plan: str  # JSON list of {"topic", "who", "due_date"}
    author_id: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)

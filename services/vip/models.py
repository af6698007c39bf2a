"""VIP tables. Relay, breach and escalation rows are never deleted (research distribution is
kept five years); shifts may be removed from the rota."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime
from services.common.names import PersonNameBase


class RosterEntry(SQLModel, table=True):
    __tablename__ = "vip_roster"
    __table_args__ = (Index("ix_vip_roster_broker", "broker_id", "client_id"),)

    client_id: str = Field(primary_key=True, max_length=36)
    broker_id: str = Field(default="", max_length=36)
    backup_broker_id: str = Field(default="", max_length=36)
    risk_tolerance: int = 0
    risk_assessed_on: date | None = None
    # 1 active, 2 left (RosterStatus)
    status: int = Field(default=1, index=True)
    leave_reason: str = Field(default="", max_length=500)
    joined_at: datetime = Field(sa_type=UtcDateTime)
    left_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Shift(SQLModel, table=True):
    __tablename__ = "vip_shift"
    __table_args__ = (Index("ix_vip_shift_role_time", "role", "start_at", "end_at"),)

    id: str = Field(primary_key=True, max_length=36)
    staff_id: str = Field(max_length=36, index=True)
    role: int
    start_at: datetime = Field(sa_type=UtcDateTime)
    end_at: datetime = Field(sa_type=UtcDateTime)
    note: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_type=UtcDateTime)
    created_by: str = Field(default="", max_length=100)


class Advisory(SQLModel, table=True):
    __tablename__ = "vip_advisory"
    __table_args__ = (
        Index("ix_vip_advisory_assignee", "assignee_id", "state"),
        Index("ix_vip_advisory_escalated", "escalated_to_id", "state"),
        Index("ix_vip_advisory_client", "client_id", "state"),
        Index("ix_vip_advisory_state_due", "state", "ack_due_at", "answer_due_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    client_id: str = Field(max_length=36)
    question: str = Field(max_length=2000)
    # Comma-separated.
    tickers: str = Field(default="", max_length=500)
    urgency: int
    source: int
    source_ticket_id: str = Field(default="", max_length=64, index=True)
    state: int
    assignee_id: str = Field(default="", max_length=36)
    dedicated_broker_id: str = Field(default="", max_length=36, index=True)
    opened_at: datetime = Field(sa_type=UtcDateTime)
    ack_due_at: datetime = Field(sa_type=UtcDateTime)
    answer_due_at: datetime = Field(sa_type=UtcDateTime)
    acked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    close_reason: str = Field(default="", max_length=500)
    research_requested: bool = False
    research_answer: str = Field(default="", max_length=4000)
    research_note_id: str = Field(default="", max_length=36)
    research_analyst_id: str = Field(default="", max_length=36)
    research_answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    advice: str = Field(default="", max_length=4000)
    advice_risk_level: int = 0
    suitability_overridden: bool = False
    override_reason: str = Field(default="", max_length=500)
    ack_breached_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answer_breached_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    escalation_level: int = 0
    escalated_to_id: str = Field(default="", max_length=36)
    step1_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    step2_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    answered_by: str = Field(default="", max_length=100)
    created_by: str = Field(default="", max_length=100)


class RelayPlan(SQLModel, table=True):
    """One row per published note revision: makes a replayed note plan nothing twice.
    Written pending by the note consumer; the relay planner pages the directory outside any
    transaction, then writes the tasks and clears pending in one transaction."""

    __tablename__ = "vip_relay_plan"

    note_id: str = Field(primary_key=True, max_length=36)
    revision: int = Field(primary_key=True)
    title: str = Field(default="", max_length=300)
    kind: int = 0
    risk_level: int = 0
    # Comma-separated, upper case (the note's tickers, at most 100).
    tickers: str = Field(default="", max_length=2000)
    pending: bool = Field(default=False, index=True)
    targeted: int = 0
    withheld: int = 0
    publish_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    planned_at: datetime = Field(sa_type=UtcDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Relay(SQLModel, table=True):
    __tablename__ = "vip_relay"
    __table_args__ = (
        UniqueConstraint("note_id", "revision", "client_id", name="uq_vip_relay_note_client"),
        Index("ix_vip_relay_broker", "broker_id", "state", "due_at"),
        Index("ix_vip_relay_state_due", "state", "due_at"),
        Index("ix_vip_relay_client", "client_id", "state"),
    )

    id: str = Field(primary_key=True, max_length=36)
    note_id: str = Field(max_length=36)
    revision: int
    note_title: str = Field(default="", max_length=300)
    risk_level: int = 0
    client_id: str = Field(max_length=36)
    broker_id: str = Field(default="", max_length=36)
    matched_tickers: str = Field(default="", max_length=500)
    state: int
    created_at: datetime = Field(sa_type=UtcDateTime)
    due_at: datetime = Field(sa_type=UtcDateTime)
    publish_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    channel: int = 0
    summary: str = Field(default="", max_length=2000)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ack_note: str = Field(default="", max_length=500)
    cancelled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    reason: str = Field(default="", max_length=300)
    overdue_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Breach(SQLModel, table=True):
    """Append-only: one row per SLA breach (advisory acknowledge/answer, relay)."""

    __tablename__ = "vip_breach"
    __table_args__ = (UniqueConstraint("kind", "resource_id", name="uq_vip_breach"),
                      Index("ix_vip_breach_time", "breached_at"))

    id: str = Field(primary_key=True, max_length=36)
    kind: int
    resource_id: str = Field(max_length=36)
    client_id: str = Field(max_length=36)
    broker_id: str = Field(default="", max_length=36)
    due_at: datetime = Field(sa_type=UtcDateTime)
    breached_at: datetime = Field(sa_type=UtcDateTime)


class Escalation(SQLModel, table=True):
    """Append-only: one row per escalation step of an advisory."""

    __tablename__ = "vip_escalation"
    __table_args__ = (UniqueConstraint("advisory_id", "level", name="uq_vip_escalation"),)

    id: str = Field(primary_key=True, max_length=36)
    advisory_id: str = Field(max_length=36)
    client_id: str = Field(max_length=36)
    level: int
    to_staff_id: str = Field(default="", max_length=36)
    from_staff_id: str = Field(default="", max_length=36)
    broker_id: str = Field(default="", max_length=36)
    escalated_at: datetime = Field(sa_type=UtcDateTime)


class PersonName(PersonNameBase, table=True):
    """Clients' and staff members' display names from the directory's events
    (services/common/names.py): responses carry them beside the ids."""

    __tablename__ = "vip_person_name"

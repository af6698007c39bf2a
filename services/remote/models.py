"""Remote tables. Callbacks, tickets, their activities and escalations are append-only
records kept at least three years: no code path deletes them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime
from services.common.names import PersonNameBase


class RemoteClient(SQLModel, table=True):
    """What remote knows of a directory client: kept from directory calls and events."""

    __tablename__ = "remote_client"

    client_id: str = Field(primary_key=True, max_length=36)
    tier: int = 0
    channel: int = 0
    status: int = 0
    opened_on: date | None = None
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Campaign(SQLModel, table=True):
    __tablename__ = "remote_campaign"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=100)
    purpose: str = Field(default="", max_length=1000)
    kind: int
    # TargetRule, serialized protobuf
    rule: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    start_date: date
    end_date: date
    # comma-separated staff ids
    agent_ids: str = Field(max_length=2000)
    daily_quota: int
    max_attempts: int
    retry_backoff_minutes: int
    state: int
    target_count: int = 0
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class CallbackTarget(SQLModel, table=True):
    """One client in a campaign's work queue."""

    __tablename__ = "remote_callback_target"
    __table_args__ = (
        UniqueConstraint("campaign_id", "client_id", name="uq_remote_target_client"),
        Index("ix_remote_target_queue", "campaign_id", "state", "next_attempt_at"),
        Index("ix_remote_target_client", "client_id", "state"),
    )

    id: str = Field(primary_key=True, max_length=36)
    campaign_id: str = Field(max_length=36)
    client_id: str = Field(max_length=36)
    state: int
    attempts: int = 0
    calls: int = 0
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    claimed_by: str = Field(default="", max_length=100)
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_outcome: int = 0
    due_date: date | None = None
    removed_reason: str = Field(default="", max_length=200)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class QuotaMiss(SQLModel, table=True):
    """A weekday on which an agent stayed under a campaign's quota; unique, so raised once."""

    __tablename__ = "remote_quota_miss"
    __table_args__ = (
        UniqueConstraint("campaign_id", "agent_id", "day", name="uq_remote_quota_miss"),
    )

    id: str = Field(primary_key=True, max_length=36)
    campaign_id: str = Field(max_length=36)
    agent_id: str = Field(max_length=100)
    day: date
    daily_quota: int
    made: int
    raised_at: datetime = Field(sa_type=UtcDateTime)


class ClientClaim(SQLModel, table=True):
    """At most one agent calls a client at a time, across campaigns and replicas."""

    __tablename__ = "remote_client_claim"

    client_id: str = Field(primary_key=True, max_length=36)
    agent_id: str = Field(max_length=100)
    target_id: str = Field(max_length=36)
    lease_until: datetime = Field(sa_type=UtcDateTime)


class CallbackRecord(SQLModel, table=True):
    """One call made. Append-only."""

    __tablename__ = "remote_callback"
    __table_args__ = (
        Index("ix_remote_callback_agent_time", "agent_id", "call_time"),
        Index("ix_remote_callback_client_time", "client_id", "call_time"),
        Index("ix_remote_callback_campaign", "campaign_id", "call_time"),
    )

    id: str = Field(primary_key=True, max_length=36)
    campaign_id: str = Field(default="", max_length=36)
    target_id: str = Field(default="", max_length=36)
    ticket_id: str = Field(default="", max_length=36)
    client_id: str = Field(default="", max_length=36)
    agent_id: str = Field(max_length=100)
    outcome: int
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    callback_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    call_time: datetime = Field(sa_type=UtcDateTime)
    recorded_at: datetime = Field(sa_type=UtcDateTime)
    satisfaction: int = 0


class Report(SQLModel, table=True):
    __tablename__ = "remote_report"
    __table_args__ = (Index("ix_remote_report_client", "client_id", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    client_id: str = Field(max_length=36)
    period_start: date
    period_end: date
    state: int
    # ReportFigures, serialized protobuf
    figures: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    markdown: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)
    delivery_channel: int = 0
    delivered_by: str = Field(default="", max_length=100)
    delivered_to: str = Field(default="", max_length=200)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Ticket(SQLModel, table=True):
    __tablename__ = "remote_ticket"
    __table_args__ = (
        Index("ix_remote_ticket_owner", "owner_id", "state"),
        Index("ix_remote_ticket_state", "state", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    line: int
    caller_name: str = Field(default="", max_length=100)
    caller_phone: str = Field(default="", max_length=32)
    client_id: str = Field(default="", max_length=36)
    client_tier: int = 0
    category: str = Field(default="", max_length=60)
    priority: int
    summary: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    complaint: bool = False
    state: int
    owner_id: str = Field(max_length=100)
    substitute_id: str = Field(default="", max_length=100)
    handler_department: str = Field(default="", max_length=60)
    handler_id: str = Field(default="", max_length=100)
    transferred_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # the owner keeps being reminded while another department works the ticket
    owner_reminded_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    pause_reason: int = 0
    pause_note: str = Field(default="", max_length=500)
    paused_since: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # first response clock
    frt_minutes: int
    frt_paused_s: int = 0
    frt_due_at: datetime = Field(sa_type=UtcDateTime)
    frt_warn_at: datetime = Field(sa_type=UtcDateTime)
    frt_met_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    frt_warned_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    frt_breached_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    frt_escalation: int = 0
    # resolution clock
    res_minutes: int
    res_business: bool = False
    res_paused_s: int = 0
    res_due_at: datetime = Field(sa_type=UtcDateTime)
    res_warn_at: datetime = Field(sa_type=UtcDateTime)
    res_met_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    res_warned_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    res_breached_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    res_escalation: int = 0
    resolution_note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    followup_due_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    satisfaction: int = 0
    reopen_count: int = 0
    vip_advisory_id: str = Field(default="", max_length=36)
    opened_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class TicketActivity(SQLModel, table=True):
    """A ticket's history. Append-only."""

    __tablename__ = "remote_ticket_activity"
    __table_args__ = (Index("ix_remote_activity_ticket", "ticket_id", "seq"),)

    # insertion order: several activities written in one transaction share a time
    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(max_length=36, unique=True)
    ticket_id: str = Field(max_length=36)
    kind: str = Field(max_length=30)
    staff_id: str = Field(default="", max_length=100)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    time: datetime = Field(sa_type=UtcDateTime)


class TicketEscalation(SQLModel, table=True):
    """One escalation level raised for one SLA target; the unique key makes it once."""

    __tablename__ = "remote_ticket_escalation"
    __table_args__ = (
        UniqueConstraint("ticket_id", "target", "level", name="uq_remote_escalation"),
    )

    id: str = Field(primary_key=True, max_length=36)
    ticket_id: str = Field(max_length=36)
    owner_id: str = Field(max_length=100)
    target: str = Field(max_length=20)
    level: int
    recipient_id: str = Field(default="", max_length=100)
    raised_at: datetime = Field(sa_type=UtcDateTime)


class Agent(SQLModel, table=True):
    __tablename__ = "remote_agent"

    staff_id: str = Field(primary_key=True, max_length=100)
    # comma-separated Line numbers
    lines: str = Field(default="", max_length=20)
    on_duty: bool = False
    active: bool = True
    absent: bool = False
    substitute_id: str = Field(default="", max_length=100)
    team_lead_id: str = Field(default="", max_length=100)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class LineCursor(SQLModel, table=True):
    """Round-robin position per line; moved with a conditional update (version)."""

    __tablename__ = "remote_line_cursor"

    line: int = Field(primary_key=True)
    last_agent_id: str = Field(default="", max_length=100)
    version: int = 0


class SlaPolicy(SQLModel, table=True):
    __tablename__ = "remote_sla_policy"

    line: int = Field(primary_key=True)
    priority: int = Field(primary_key=True)
    first_response_minutes: int
    resolution_minutes: int
    resolution_business_days: bool


class PersonName(PersonNameBase, table=True):
    """Clients' and staff members' display names from the directory's events
    (services/common/names.py): responses carry them beside the ids."""

    __tablename__ = "remote_person_name"

"""On-site tables. Lists of short strings are kept as JSON text; datetimes are UTC."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime
from services.common.names import PersonNameBase

# Plan item kinds
VISIT = "visit"
CONSULT = "consult"


class OnsiteSettingsRow(SQLModel, table=True):
    """The branch's settings: one row (id 1); absent means the defaults."""

    __tablename__ = "onsite_settings"

    id: int = Field(default=1, primary_key=True)
    delivery_deadline_seconds: int
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class QuotaRow(SQLModel, table=True):
    __tablename__ = "onsite_quota"
    __table_args__ = (UniqueConstraint("role", "staff_id", name="uq_onsite_quota"),)

    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(max_length=40)
    staff_id: str = Field(default="", max_length=100)
    visits_per_day: int
    rooms_per_day: int
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class PlanRow(SQLModel, table=True):
    __tablename__ = "onsite_plan"
    __table_args__ = (
        UniqueConstraint("client_manager_id", "plan_date", name="uq_onsite_plan_day"),
    )

    id: str = Field(primary_key=True, max_length=36)
    client_manager_id: str = Field(max_length=100)
    plan_date: date
    rooms: str = Field(default="[]", max_length=2000)
    note: str = Field(default="", max_length=2000)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class PlanItemRow(SQLModel, table=True):
    __tablename__ = "onsite_plan_item"
    __table_args__ = (Index("ix_onsite_plan_item_client", "client_id", "plan_date"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = Field(max_length=36, foreign_key="onsite_plan.id", index=True)
    plan_date: date
    kind: str = Field(max_length=10)
    position: int
    client_id: str = Field(max_length=36)
    reason: str = Field(default="", max_length=500)
    dropped: int = 0
    dropped_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class VisitRow(SQLModel, table=True):
    __tablename__ = "onsite_visit"
    __table_args__ = (
        Index("ix_onsite_visit_manager_day", "client_manager_id", "visit_date"),
        Index("ix_onsite_visit_client", "client_id", "visit_time"),
    )

    id: str = Field(primary_key=True, max_length=36)
    client_manager_id: str = Field(max_length=100)
    client_id: str = Field(max_length=36)
    visit_time: datetime = Field(sa_type=UtcDateTime)
    visit_date: date
    room: str = Field(default="", max_length=100)
    topics: str = Field(default="[]", max_length=2000)
    client_requests: str = Field(default="", max_length=2000)
    follow_up_needed: bool = False
    follow_up_note: str = Field(default="", max_length=2000)
    recorded_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class PatrolRow(SQLModel, table=True):
    __tablename__ = "onsite_patrol"
    __table_args__ = (Index("ix_onsite_patrol_manager_day", "client_manager_id", "patrol_date"),)

    id: str = Field(primary_key=True, max_length=36)
    client_manager_id: str = Field(max_length=100)
    room: str = Field(max_length=100)
    patrol_time: datetime = Field(sa_type=UtcDateTime)
    patrol_date: date
    observations: str = Field(default="", max_length=2000)
    recorded_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class FormRow(SQLModel, table=True):
    __tablename__ = "onsite_form"
    __table_args__ = (
        Index("ix_onsite_form_consultant", "consultant_id", "state"),
        Index("ix_onsite_form_manager", "client_manager_id", "state"),
        Index("ix_onsite_form_due", "state", "overdue_at", "deadline"),
        Index("ix_onsite_form_client", "client_id", "state"),
    )

    id: str = Field(primary_key=True, max_length=36)
    client_id: str = Field(max_length=36)
    client_manager_id: str = Field(max_length=100)
    consultant_id: str = Field(max_length=100)
    state: int
    request_note: str = Field(default="", max_length=2000)
    raised_at: datetime = Field(sa_type=UtcDateTime)
    deadline: datetime = Field(sa_type=UtcDateTime)
    analysis: str = Field(default="", max_length=10000)
    advice: str = Field(default="", max_length=5000)
    advice_risk_level: int = 0
    client_risk_tolerance: int = 0
    risk_assessment_expired: bool = False
    suitability_override: bool = False
    override_reason: str = Field(default="", max_length=1000)
    note_ids: str = Field(default="[]", max_length=4000)
    analysed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    analysed_by: str = Field(default="", max_length=100)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    delivered_by: str = Field(default="", max_length=100)
    acknowledgement: str = Field(default="", max_length=1000)
    cancelled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    cancelled_by: str = Field(default="", max_length=100)
    cancel_reason: str = Field(default="", max_length=1000)
    # Set once, by the overdue check that raised the event (the claim).
    overdue_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # FormFlag value of CLIENT_REMOTE / CLIENT_CLOSED, 0 when none.
    client_flag: int = 0
    client_flagged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class FormPositionRow(SQLModel, table=True):
    """The holdings snapshot copied when the form was raised; never updated."""

    __tablename__ = "onsite_form_position"

    form_id: str = Field(primary_key=True, max_length=36, foreign_key="onsite_form.id")
    ticker: str = Field(primary_key=True, max_length=16)
    quantity: int
    cost_price: str = Field(max_length=24)
    market_price: str = Field(default="", max_length=24)
    risk_level: int = 0
    as_of: str = Field(default="", max_length=10)


class ClientStateRow(SQLModel, table=True):
    """What the directory's events last said about a client's channel and status."""

    __tablename__ = "onsite_client_state"

    client_id: str = Field(primary_key=True, max_length=36)
    channel: int
    status: int
    client_manager_id: str = Field(default="", max_length=36)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class SeriesRow(SQLModel, table=True):
    __tablename__ = "onsite_meeting_series"

    id: str = Field(primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    weekday: int
    start_local_time: str = Field(max_length=5)
    duration_minutes: int
    format: int
    room: str = Field(default="", max_length=100)
    capacity: int
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class MeetingRow(SQLModel, table=True):
    __tablename__ = "onsite_meeting"
    __table_args__ = (Index("ix_onsite_meeting_start", "start_time", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    series_id: str = Field(default="", max_length=36)
    topic: str = Field(max_length=200)
    presenter_kind: int = 0
    presenter_id: str = Field(default="", max_length=100)
    format: int
    room: str = Field(default="", max_length=100)
    start_time: datetime = Field(sa_type=UtcDateTime)
    duration_minutes: int
    capacity: int
    note_ids: str = Field(default="[]", max_length=4000)
    state: int
    held_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=UtcDateTime)


class RegistrationRow(SQLModel, table=True):
    __tablename__ = "onsite_registration"
    __table_args__ = (Index("ix_onsite_registration_meeting", "meeting_id", "seq"),)

    id: str = Field(primary_key=True, max_length=36)
    meeting_id: str = Field(max_length=36, foreign_key="onsite_meeting.id")
    client_id: str = Field(max_length=36)
    status: int
    # Order of registration within the meeting; the waiting list moves up in this order.
    seq: int
    attended: bool = False
    registered_by: str = Field(max_length=100)
    registered_at: datetime = Field(sa_type=UtcDateTime)
    promoted_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    cancel_reason: str = Field(default="", max_length=500)


class PersonName(PersonNameBase, table=True):
    """Clients' and staff members' display names from the directory's events
    (services/common/names.py): responses carry them beside the ids."""

    __tablename__ = "onsite_person_name"

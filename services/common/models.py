"""Tables every service has in its own database: outbox, handled events, audit, idempotency."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime

COMMON_TABLES = frozenset({"outbox_event", "processed_event", "audit_record", "idempotency_record"})


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_event_unsent", "sent_at", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=36, unique=True)
    subject: str = Field(max_length=200)
    ce_type: str = Field(max_length=200)
    ce_subject: str = Field(max_length=200)
    data_schema: str = Field(max_length=200)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # W3C trace context (JSON of traceparent/tracestate) of the call that wrote the row
    trace_context: str = Field(default="", max_length=600, sa_column_kwargs={"server_default": ""})


class ProcessedEvent(SQLModel, table=True):
    """An event a consumer has applied, written in the same transaction as its effect."""

    __tablename__ = "processed_event"
    __table_args__ = (UniqueConstraint("consumer", "event_id", name="uq_processed_event"),)

    id: int | None = Field(default=None, primary_key=True)
    consumer: str = Field(max_length=100)
    event_id: str = Field(max_length=100)
    handled_at: datetime = Field(sa_type=UtcDateTime)


class AuditRecord(SQLModel, table=True):
    """Append-only: one row per mutating call. No code path updates or deletes it."""

    __tablename__ = "audit_record"

    id: str = Field(primary_key=True, max_length=36)
    staff_id: str = Field(max_length=100, index=True)
    method: str = Field(max_length=100, index=True)
    resource: str = Field(max_length=200)
    request_id: str = Field(max_length=100)
    time: datetime = Field(sa_type=UtcDateTime)
    outcome: str = Field(max_length=40)


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a creating call, keyed by caller, method and request_id."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        UniqueConstraint("staff_id", "method", "request_id", name="uq_idempotency_record"),
    )

    id: int | None = Field(default=None, primary_key=True)
    staff_id: str = Field(max_length=100)
    method: str = Field(max_length=100)
    request_id: str = Field(max_length=100)
    response: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_type=UtcDateTime)

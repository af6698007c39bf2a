"""Rows to protobuf messages."""

from __future__ import annotations

from datetime import date

from branch.vip.v1 import advisory_pb2, relay_pb2, roster_pb2, rota_pb2

from services.common.protos import ts
from services.vip import models
from services.vip.core import assessment_expired, split


def _set_ts(msg, **values) -> None:  # type: ignore[no-untyped-def]
    for name, value in values.items():
        if value is not None:
            getattr(msg, name).CopyFrom(ts(value))


def roster_to_proto(row: models.RosterEntry, today: date) -> roster_pb2.RosterEntry:
    msg = roster_pb2.RosterEntry(
        client_id=row.client_id,
        broker_id=row.broker_id,
        backup_broker_id=row.backup_broker_id,
        risk_tolerance=row.risk_tolerance,  # type: ignore[arg-type]
        risk_assessed_on=row.risk_assessed_on.isoformat() if row.risk_assessed_on else "",
        risk_assessment_expired=assessment_expired(row.risk_assessed_on, today),
        status=row.status,  # type: ignore[arg-type]
        leave_reason=row.leave_reason,
    )
    _set_ts(msg, join_time=row.joined_at, leave_time=row.left_at, update_time=row.updated_at)
    return msg


def shift_to_proto(row: models.Shift) -> rota_pb2.Shift:
    msg = rota_pb2.Shift(id=row.id, staff_id=row.staff_id, role=row.role,  # type: ignore[arg-type]
                         note=row.note, created_by=row.created_by)
    _set_ts(msg, start_time=row.start_at, end_time=row.end_at, create_time=row.created_at)
    return msg


def advisory_to_proto(row: models.Advisory) -> advisory_pb2.Advisory:
    msg = advisory_pb2.Advisory(
        id=row.id,
        client_id=row.client_id,
        question=row.question,
        tickers=split(row.tickers),
        urgency=row.urgency,  # type: ignore[arg-type]
        source=row.source,  # type: ignore[arg-type]
        source_ticket_id=row.source_ticket_id,
        state=row.state,  # type: ignore[arg-type]
        assignee_id=row.assignee_id,
        dedicated_broker_id=row.dedicated_broker_id,
        close_reason=row.close_reason,
        research_requested=row.research_requested,
        research_answer=row.research_answer,
        research_note_id=row.research_note_id,
        research_analyst_id=row.research_analyst_id,
        advice=row.advice,
        advice_risk_level=row.advice_risk_level,  # type: ignore[arg-type]
        suitability_overridden=row.suitability_overridden,
        override_reason=row.override_reason,
        acknowledge_breached=row.ack_breached_at is not None,
        answer_breached=row.answer_breached_at is not None,
        escalation_level=row.escalation_level,
        escalated_to_id=row.escalated_to_id,
        answered_by=row.answered_by,
        created_by=row.created_by,
    )
    _set_ts(msg, open_time=row.opened_at, acknowledge_due_time=row.ack_due_at,
            answer_due_time=row.answer_due_at, acknowledge_time=row.acked_at,
            answer_time=row.answered_at, close_time=row.closed_at,
            research_answer_time=row.research_answered_at)
    return msg


def relay_to_proto(row: models.Relay) -> relay_pb2.RelayTask:
    msg = relay_pb2.RelayTask(
        id=row.id,
        note_id=row.note_id,
        revision=row.revision,
        note_title=row.note_title,
        risk_level=row.risk_level,  # type: ignore[arg-type]
        client_id=row.client_id,
        broker_id=row.broker_id,
        matched_tickers=split(row.matched_tickers),
        state=row.state,  # type: ignore[arg-type]
        channel=row.channel,  # type: ignore[arg-type]
        summary=row.summary,
        acknowledgement_note=row.ack_note,
        reason=row.reason,
        overdue=row.overdue_at is not None,
    )
    _set_ts(msg, create_time=row.created_at, due_time=row.due_at, publish_time=row.publish_time,
            deliver_time=row.delivered_at, acknowledge_time=row.acknowledged_at,
            cancel_time=row.cancelled_at)
    return msg


CHANNEL_NAMES = {
    relay_pb2.RELAY_CHANNEL_PHONE: "phone",
    relay_pb2.RELAY_CHANNEL_MEETING: "meeting",
    relay_pb2.RELAY_CHANNEL_MESSAGE: "message",
    relay_pb2.RELAY_CHANNEL_VIDEO: "video",
}

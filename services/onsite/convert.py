"""Rows to protobuf messages."""

from __future__ import annotations

from datetime import datetime

from branch.onsite.v1 import consultation_pb2, day_pb2, meeting_pb2, onsite_service_pb2

from services.common.protos import ts
from services.onsite.core import loads
from services.onsite.models import (
    FormPositionRow,
    FormRow,
    MeetingRow,
    OnsiteSettingsRow,
    PatrolRow,
    PlanItemRow,
    PlanRow,
    QuotaRow,
    RegistrationRow,
    SeriesRow,
    VisitRow,
)

OPEN_STATES = (consultation_pb2.FORM_STATE_RAISED, consultation_pb2.FORM_STATE_ANALYSED)


def _set_ts(msg, field: str, value: datetime | None) -> None:  # type: ignore[no-untyped-def]
    if value is not None:
        getattr(msg, field).CopyFrom(ts(value))


def plan_to_proto(row: PlanRow, items: list[PlanItemRow]) -> day_pb2.DailyPlan:
    msg = day_pb2.DailyPlan(
        id=row.id, client_manager_id=row.client_manager_id,
        plan_date=row.plan_date.isoformat(), rooms=loads(row.rooms), note=row.note,
        create_time=ts(row.created_at), update_time=ts(row.updated_at),
    )
    for item in sorted(items, key=lambda i: (i.kind, i.position)):
        pc = day_pb2.PlannedClient(client_id=item.client_id, reason=item.reason,
                                   dropped=item.dropped)  # type: ignore[arg-type]
        if item.dropped:
            msg.dropped.append(pc)
        elif item.kind == "visit":
            msg.visits.append(pc)
        else:
            msg.consultation_targets.append(pc)
    return msg


def visit_to_proto(row: VisitRow) -> day_pb2.Visit:
    return day_pb2.Visit(
        id=row.id, client_manager_id=row.client_manager_id, client_id=row.client_id,
        visit_time=ts(row.visit_time), room=row.room, topics=loads(row.topics),
        client_requests=row.client_requests, follow_up_needed=row.follow_up_needed,
        follow_up_note=row.follow_up_note, recorded_by=row.recorded_by,
        visit_date=row.visit_date.isoformat(), create_time=ts(row.created_at),
    )


def patrol_to_proto(row: PatrolRow) -> day_pb2.Patrol:
    return day_pb2.Patrol(
        id=row.id, client_manager_id=row.client_manager_id, room=row.room,
        patrol_time=ts(row.patrol_time), observations=row.observations,
        recorded_by=row.recorded_by, patrol_date=row.patrol_date.isoformat(),
        create_time=ts(row.created_at),
    )


def quota_to_proto(row: QuotaRow) -> day_pb2.Quota:
    return day_pb2.Quota(
        role=row.role, staff_id=row.staff_id, visits_per_day=row.visits_per_day,
        rooms_per_day=row.rooms_per_day, updated_by=row.updated_by,
        update_time=ts(row.updated_at),
    )


def is_overdue(row: FormRow, now: datetime) -> bool:
    if row.overdue_at is not None:
        return True
    if row.state in OPEN_STATES:
        return row.deadline <= now
    if row.delivered_at is not None:
        return row.delivered_at > row.deadline
    return False


def form_flags(row: FormRow, now: datetime) -> list[int]:
    flags: list[int] = []
    if row.suitability_override:
        flags.append(consultation_pb2.FORM_FLAG_SUITABILITY_OVERRIDE)
    if is_overdue(row, now):
        flags.append(consultation_pb2.FORM_FLAG_OVERDUE)
    if row.client_flag:
        flags.append(row.client_flag)
    return flags


def form_to_proto(
    row: FormRow, positions: list[FormPositionRow], now: datetime
) -> consultation_pb2.ConsultationForm:
    msg = consultation_pb2.ConsultationForm(
        id=row.id, client_id=row.client_id, client_manager_id=row.client_manager_id,
        consultant_id=row.consultant_id, state=row.state,  # type: ignore[arg-type]
        request_note=row.request_note,
        positions=[
            consultation_pb2.PositionSnapshot(
                ticker=p.ticker, quantity=p.quantity, cost_price=p.cost_price,
                market_price=p.market_price, risk_level=p.risk_level,  # type: ignore[arg-type]
                as_of=p.as_of,
            )
            for p in sorted(positions, key=lambda p: p.ticker)
        ],
        raise_time=ts(row.raised_at), deadline=ts(row.deadline),
        analysis=row.analysis, advice=row.advice,
        advice_risk_level=row.advice_risk_level,  # type: ignore[arg-type]
        client_risk_tolerance=row.client_risk_tolerance,  # type: ignore[arg-type]
        risk_assessment_expired=row.risk_assessment_expired,
        suitability_override=row.suitability_override,
        suitability_override_reason=row.override_reason,
        note_ids=loads(row.note_ids), analysed_by=row.analysed_by,
        delivered_by=row.delivered_by, acknowledgement=row.acknowledgement,
        cancelled_by=row.cancelled_by, cancel_reason=row.cancel_reason,
        overdue=is_overdue(row, now), flags=form_flags(row, now),  # type: ignore[arg-type]
        update_time=ts(row.updated_at),
    )
    _set_ts(msg, "analyse_time", row.analysed_at)
    _set_ts(msg, "deliver_time", row.delivered_at)
    _set_ts(msg, "cancel_time", row.cancelled_at)
    _set_ts(msg, "overdue_time", row.overdue_at)
    return msg


def settings_to_proto(row: OnsiteSettingsRow) -> onsite_service_pb2.OnsiteSettings:
    msg = onsite_service_pb2.OnsiteSettings(updated_by=row.updated_by)
    msg.delivery_deadline.FromSeconds(row.delivery_deadline_seconds)
    _set_ts(msg, "update_time", row.updated_at)
    return msg


def series_to_proto(row: SeriesRow) -> meeting_pb2.MeetingSeries:
    return meeting_pb2.MeetingSeries(
        id=row.id, title=row.title, weekday=row.weekday,
        start_local_time=row.start_local_time, duration_minutes=row.duration_minutes,
        format=row.format, room=row.room, capacity=row.capacity,  # type: ignore[arg-type]
        created_by=row.created_by, create_time=ts(row.created_at),
    )


def meeting_to_proto(
    row: MeetingRow, confirmed: int = 0, waitlisted: int = 0, attended: int = 0
) -> meeting_pb2.Meeting:
    msg = meeting_pb2.Meeting(
        id=row.id, series_id=row.series_id, topic=row.topic,
        presenter_kind=row.presenter_kind,  # type: ignore[arg-type]
        presenter_id=row.presenter_id, format=row.format,  # type: ignore[arg-type]
        room=row.room, start_time=ts(row.start_time), duration_minutes=row.duration_minutes,
        capacity=row.capacity, note_ids=loads(row.note_ids),
        state=row.state,  # type: ignore[arg-type]
        confirmed_count=confirmed, waitlisted_count=waitlisted, attended_count=attended,
        create_time=ts(row.created_at),
    )
    _set_ts(msg, "held_time", row.held_at)
    return msg


def registration_to_proto(row: RegistrationRow, position: int = 0) -> meeting_pb2.Registration:
    msg = meeting_pb2.Registration(
        id=row.id, meeting_id=row.meeting_id, client_id=row.client_id,
        status=row.status,  # type: ignore[arg-type]
        waitlist_position=position, attended=row.attended, registered_by=row.registered_by,
        register_time=ts(row.registered_at), cancel_reason=row.cancel_reason,
    )
    _set_ts(msg, "promote_time", row.promoted_at)
    _set_ts(msg, "cancel_time", row.cancelled_at)
    return msg

"""Rows to protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import report_pb2, ticket_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.calendar import BranchCalendar
from services.common.clock import as_utc
from services.common.errors import Violations
from services.common.protos import from_ts, ts
from services.remote import sla as sla_rules
from services.remote.models import (
    Agent,
    CallbackRecord,
    CallbackTarget,
    Campaign,
    Report,
    SlaPolicy,
    Ticket,
    TicketActivity,
)


def utc(value: datetime) -> datetime:
    return as_utc(value)


def when(v: Violations, field: str, value: Timestamp) -> datetime | None:
    """A caller's timestamp, or None when unset; out of range (year 1 to 9999, nanos within
    a second) is the caller's mistake, named in v, not an internal error."""
    try:
        return from_ts(value)
    except ValueError:
        v.add(field, "not a valid timestamp")
        return None


def campaign(row: Campaign) -> cpb.Campaign:
    rule = cpb.TargetRule()
    rule.ParseFromString(row.rule)
    out = cpb.Campaign(
        id=row.id, name=row.name, purpose=row.purpose, kind=row.kind,  # type: ignore[arg-type]
        rule=rule, start_date=row.start_date.isoformat(), end_date=row.end_date.isoformat(),
        agent_ids=[a for a in row.agent_ids.split(",") if a], daily_quota=row.daily_quota,
        max_attempts=row.max_attempts, retry_backoff_minutes=row.retry_backoff_minutes,
        state=row.state, target_count=row.target_count, created_by=row.created_by,  # type: ignore[arg-type]
        create_time=ts(row.created_at),
    )
    if row.closed_at:
        out.close_time.CopyFrom(ts(row.closed_at))
    return out


def target(row: CallbackTarget) -> cpb.CallbackTarget:
    out = cpb.CallbackTarget(
        id=row.id, campaign_id=row.campaign_id, client_id=row.client_id,
        state=row.state, attempts=row.attempts, next_attempt_time=ts(row.next_attempt_at),  # type: ignore[arg-type]
        claimed_by=row.claimed_by, last_outcome=row.last_outcome,  # type: ignore[arg-type]
        due_date=row.due_date.isoformat() if row.due_date else "",
        removed_reason=row.removed_reason,
    )
    if row.lease_until and row.claimed_by:
        out.lease_expire_time.CopyFrom(ts(row.lease_until))
    return out


def callback(row: CallbackRecord) -> cpb.Callback:
    out = cpb.Callback(
        id=row.id, campaign_id=row.campaign_id, target_id=row.target_id,
        ticket_id=row.ticket_id, client_id=row.client_id, agent_id=row.agent_id,
        outcome=row.outcome, notes=row.notes, call_time=ts(row.call_time),  # type: ignore[arg-type]
        satisfaction=row.satisfaction, record_time=ts(row.recorded_at),
    )
    if row.callback_time:
        out.callback_time.CopyFrom(ts(row.callback_time))
    return out


def report(row: Report, *, content: bool) -> report_pb2.Report:
    figures = report_pb2.ReportFigures()
    figures.ParseFromString(row.figures)
    out = report_pb2.Report(
        id=row.id, client_id=row.client_id, period_start=row.period_start.isoformat(),
        period_end=row.period_end.isoformat(), state=row.state, figures=figures,  # type: ignore[arg-type]
        created_by=row.created_by, create_time=ts(row.created_at),
        delivery_channel=row.delivery_channel, delivered_by=row.delivered_by,  # type: ignore[arg-type]
        delivered_to=row.delivered_to,
    )
    if content:
        out.markdown, out.html = row.markdown, row.html
    if row.delivered_at:
        out.deliver_time.CopyFrom(ts(row.delivered_at))
    return out


@dataclass(frozen=True)
class SlaNow:
    """What a clock's time left is counted with: the service's clock read now, the branch's
    zone and calendar."""

    now: datetime
    tz: ZoneInfo
    cal: BranchCalendar


def _clock(minutes: int, due: datetime, warn: datetime, met: datetime | None, paused: bool,
           paused_s: int, warned: datetime | None, breached: datetime | None,
           business: bool, sla: SlaNow, paused_since: datetime | None) -> ticket_pb2.SlaClock:
    out = ticket_pb2.SlaClock(target_minutes=minutes, paused=paused, paused_seconds=paused_s,
                              warned=warned is not None, breached=breached is not None,
                              business_days=business)
    if not paused:
        out.due_time.CopyFrom(ts(due))
        out.warn_time.CopyFrom(ts(warn))
    if met:
        out.met_time.CopyFrom(ts(met))
    else:  # paused: due is the one from before the pause, frozen at its start
        at = (paused_since or sla.now) if paused else sla.now
        out.remaining_seconds = sla_rules.remaining(due, at, business, sla.tz, sla.cal)
    return out


def ticket(row: Ticket, activities: list[TicketActivity] | None = None, *,
           sla: SlaNow) -> ticket_pb2.Ticket:
    """The ticket as the API shows it; its SLA clocks' time left counted at sla.now."""
    waiting = row.state == ticket_pb2.TICKET_STATE_WAITING
    out = ticket_pb2.Ticket(
        id=row.id, line=row.line, caller_name=row.caller_name,  # type: ignore[arg-type]
        caller_phone=row.caller_phone, client_id=row.client_id, client_tier=row.client_tier,  # type: ignore[arg-type]
        category=row.category, priority=row.priority, summary=row.summary,  # type: ignore[arg-type]
        description=row.description, complaint=row.complaint, state=row.state,  # type: ignore[arg-type]
        owner_id=row.owner_id, substitute_id=row.substitute_id,
        handler_department=row.handler_department, handler_id=row.handler_id,
        first_response=_clock(row.frt_minutes, row.frt_due_at, row.frt_warn_at, row.frt_met_at,
                              waiting and row.frt_met_at is None, row.frt_paused_s,
                              row.frt_warned_at, row.frt_breached_at, False, sla,
                              row.paused_since),
        resolution=_clock(row.res_minutes, row.res_due_at, row.res_warn_at, row.res_met_at,
                          waiting, row.res_paused_s, row.res_warned_at, row.res_breached_at,
                          row.res_business, sla, row.paused_since),
        pause_reason=row.pause_reason if waiting else 0, pause_note=row.pause_note,  # type: ignore[arg-type]
        escalation_level=max(row.frt_escalation, row.res_escalation),
        resolution_note=row.resolution_note, satisfaction=row.satisfaction,
        reopen_count=row.reopen_count, vip_advisory_id=row.vip_advisory_id,
        open_time=ts(row.opened_at), update_time=ts(row.updated_at),
    )
    if row.followup_due_at and row.state == ticket_pb2.TICKET_STATE_RESOLVED:
        out.follow_up_due_time.CopyFrom(ts(row.followup_due_at))
    if row.closed_at:
        out.close_time.CopyFrom(ts(row.closed_at))
    for a in activities or []:
        out.activities.append(ticket_pb2.TicketActivity(
            id=a.id, kind=a.kind, staff_id=a.staff_id, note=a.note, time=ts(a.time)))
    return out


def agent(row: Agent) -> ticket_pb2.Agent:
    return ticket_pb2.Agent(
        staff_id=row.staff_id, lines=[int(x) for x in row.lines.split(",") if x],  # type: ignore[misc]
        on_duty=row.on_duty, active=row.active, absent=row.absent,
        substitute_id=row.substitute_id, team_lead_id=row.team_lead_id,
        update_time=ts(row.updated_at))


def policy(row: SlaPolicy) -> ticket_pb2.SlaPolicy:
    return ticket_pb2.SlaPolicy(
        line=row.line, priority=row.priority,  # type: ignore[arg-type]
        first_response_minutes=row.first_response_minutes,
        resolution_minutes=row.resolution_minutes,
        resolution_business_days=row.resolution_business_days)

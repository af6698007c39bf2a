"""Weekly statistics per agent (每周受理、督办、回访情况)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import ticket_pb2
from sqlmodel import col, select

from services.common.auth import Principal
from services.common.clock import week_of
from services.common.errors import InvalidArgument, PermissionDenied
from services.remote.core import Core
from services.remote.models import CallbackRecord, Report, Ticket, TicketEscalation

# weeks near year 1 or 9999 overflow in UTC; the branch has no records before this
EARLIEST = date(2000, 1, 1)


@dataclass
class Statistics:
    core: Core

    async def weekly(self, principal: Principal, req: api.GetWeeklyStatisticsRequest
                     ) -> api.GetWeeklyStatisticsResponse:
        if req.week_of:
            try:
                day = date.fromisoformat(req.week_of) if len(req.week_of) == 10 else None
            except ValueError:
                day = None
            if day is None:
                raise InvalidArgument({"week_of": "YYYY-MM-DD"})
            if not EARLIEST <= day <= self.core.today() + timedelta(days=366):
                raise InvalidArgument({"week_of": "from 2000-01-01, at most a year ahead"})
        else:
            day = self.core.today()
        agent = req.agent_id
        if not principal.sees_branch:
            if agent and agent != principal.staff_id:
                raise PermissionDenied("agents see their own statistics", reason="OUT_OF_SCOPE")
            agent = principal.staff_id
        monday, sunday = week_of(day)
        start, end = self.core.day_range(monday, sunday)
        rows: dict[str, ticket_pb2.AgentWeek] = {}
        satisfaction: dict[str, list[int]] = {}

        def of(staff_id: str) -> ticket_pb2.AgentWeek:
            if staff_id not in rows:
                rows[staff_id] = ticket_pb2.AgentWeek(agent_id=staff_id)
            return rows[staff_id]

        async with self.core.db.read() as session:
            opened = (await session.exec(select(Ticket.owner_id, Ticket.complaint).where(
                col(Ticket.opened_at) >= start, col(Ticket.opened_at) < end))).all()
            resolved = (await session.exec(select(
                Ticket.owner_id, Ticket.frt_breached_at, Ticket.res_breached_at).where(
                col(Ticket.resolved_at) >= start, col(Ticket.resolved_at) < end))).all()
            escalated = (await session.exec(select(
                TicketEscalation.owner_id, TicketEscalation.ticket_id).where(
                col(TicketEscalation.raised_at) >= start,
                col(TicketEscalation.raised_at) < end).distinct())).all()
            calls = (await session.exec(select(
                CallbackRecord.agent_id, CallbackRecord.outcome, CallbackRecord.satisfaction)
                .where(col(CallbackRecord.call_time) >= start,
                       col(CallbackRecord.call_time) < end))).all()
            delivered = (await session.exec(select(Report.delivered_by).where(
                col(Report.delivered_at) >= start, col(Report.delivered_at) < end))).all()
        for owner, complaint in opened:
            of(owner).tickets_accepted += 1
            of(owner).complaints += int(complaint)
        for owner, frt_breach, res_breach in resolved:
            of(owner).tickets_resolved += 1
            of(owner).resolved_within_sla += int(frt_breach is None and res_breach is None)
        for owner, _ticket in escalated:
            of(owner).tickets_escalated += 1
        for staff, outcome, score in calls:
            of(staff).callbacks_made += 1
            of(staff).callbacks_reached += int(outcome == cpb.CALLBACK_OUTCOME_REACHED)
            if score:
                satisfaction.setdefault(staff, []).append(score)
        for staff in delivered:
            of(staff).reports_delivered += 1
        for staff, scores in satisfaction.items():
            of(staff).average_satisfaction = round(sum(scores) / len(scores), 2)
        if agent:
            rows = {agent: of(agent)}
        total = ticket_pb2.AgentWeek(agent_id="")
        all_scores = [s for k, v in satisfaction.items() if k in rows for s in v]
        for r in rows.values():
            for name in ("tickets_accepted", "tickets_escalated", "tickets_resolved",
                         "resolved_within_sla", "callbacks_made", "callbacks_reached",
                         "reports_delivered", "complaints"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
        if all_scores:
            total.average_satisfaction = round(sum(all_scores) / len(all_scores), 2)
        return api.GetWeeklyStatisticsResponse(
            week_start=monday.isoformat(), week_end=sunday.isoformat(),
            working_days=self.core.calendar.working_days(monday, sunday),
            agents=[rows[k] for k in sorted(rows)], total=total)

"""Hotline tickets on two lines: first-contact ownership (首问负责制), fair assignment,
substitutes, transfers, SLA clocks with pauses, warnings and escalation, follow-up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from branch.directory.v1 import client_pb2, staff_pb2
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import events_pb2, ticket_pb2
from branch.remote.v1 import remote_service_pb2 as api
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics
from services.common.auth import Principal
from services.common.clock import as_utc
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import from_ts, ts
from services.common.upsert import insert_missing, upsert
from services.remote import convert, sla
from services.remote.core import Core, remember_client
from services.remote.models import (
    Agent,
    CallbackRecord,
    LineCursor,
    SlaPolicy,
    Ticket,
    TicketActivity,
    TicketEscalation,
)

log = get_logger("remote", component="tickets")

LINES = (ticket_pb2.LINE_INVESTMENT, ticket_pb2.LINE_TECHNICAL)
PRIORITIES = (ticket_pb2.PRIORITY_NORMAL, ticket_pb2.PRIORITY_URGENT)
LINE_NAMES: dict[int, str] = {ticket_pb2.LINE_INVESTMENT: "investment",
                              ticket_pb2.LINE_TECHNICAL: "technical"}
PRIORITY_NAMES: dict[int, str] = {ticket_pb2.PRIORITY_NORMAL: "normal",
                                  ticket_pb2.PRIORITY_URGENT: "urgent"}
# (first response minutes, resolution minutes, resolution counted on weekdays only)
DEFAULT_POLICY = {
    ticket_pb2.PRIORITY_NORMAL: (15, 1440, True),
    ticket_pb2.PRIORITY_URGENT: (15, 240, False),
}
UNRESOLVED = (ticket_pb2.TICKET_STATE_OPEN, ticket_pb2.TICKET_STATE_IN_PROGRESS,
              ticket_pb2.TICKET_STATE_WAITING)
RUNNING = (ticket_pb2.TICKET_STATE_OPEN, ticket_pb2.TICKET_STATE_IN_PROGRESS)
FOLLOW_UP_DELAY = timedelta(days=1)
FOLLOW_UP_RETRY = timedelta(hours=2)
OWNER_REMINDER_EVERY = timedelta(hours=4)
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{3,30}$")
TARGETS = {"first_response": "frt", "resolution": "res"}
# who may be put on hotline duty: the roles that may work a ticket
DESK_ROLES = {staff_pb2.ROLE_SERVICE_AGENT, staff_pb2.ROLE_SUPERVISOR}


def add_activity(session: AsyncSession, ticket_id: str, kind: str, staff_id: str, note: str,
                 now: datetime) -> None:
    session.add(TicketActivity(id=new_id(), ticket_id=ticket_id, kind=kind, staff_id=staff_id,
                               note=note, time=now))


async def seed_defaults(session: AsyncSession) -> None:
    """Default SLA policies and round-robin cursors, created once (insert-if-missing in one
    statement each: replicas starting together both seed)."""
    for line in LINES:
        await insert_missing(session, LineCursor,
                             {"line": line, "last_agent_id": "", "version": 0}, key=["line"])
        for priority, (frt, res, business) in DEFAULT_POLICY.items():
            await insert_missing(session, SlaPolicy, {
                "line": line, "priority": priority, "first_response_minutes": frt,
                "resolution_minutes": res, "resolution_business_days": business,
            }, key=["line", "priority"])


@dataclass
class Tickets:
    core: Core

    # ---- agents and policies -------------------------------------------------------------

    async def set_duty(self, principal: Principal, req: api.SetAgentDutyRequest
                       ) -> ticket_pb2.Agent:
        v = Violations()
        v.check(0 < len(req.staff_id) <= 100, "staff_id", "required")
        v.check(all(line in LINES for line in req.lines), "lines", "INVESTMENT or TECHNICAL")
        v.check(bool(req.lines) or not req.on_duty, "lines", "name the lines to be on duty for")
        v.check(len(req.team_lead_id) <= 100, "team_lead_id", "at most 100 characters")
        v.raise_if_any()
        if not principal.sees_branch and req.staff_id != principal.staff_id:
            raise PermissionDenied("agents set only their own duty", reason="OUT_OF_SCOPE")
        async with self.core.db.read() as session:
            known = await session.get(Agent, req.staff_id)
        lead = req.team_lead_id
        if known is None or not lead:
            staff = await self.core.directory.get_staff(req.staff_id)
            if staff is None or not staff.active:
                raise InvalidArgument({"staff_id": "no such active staff member"})
            if not DESK_ROLES.intersection(staff.roles):
                # tickets assigned to a broker or analyst could not be worked (access.py)
                raise InvalidArgument({"staff_id": "not a service agent or supervisor"})
            lead = lead or staff.team_lead_id
        async with self.core.db.transaction() as session:
            now = self.core.now()
            # one statement: two first SetAgentDuty calls for an agent both inserted
            await upsert(session, Agent, {
                "staff_id": req.staff_id, "lines": ",".join(str(x) for x in sorted(set(req.lines))),
                "on_duty": req.on_duty, "active": True, "absent": False, "substitute_id": "",
                "team_lead_id": lead, "updated_at": now,
            }, key=["staff_id"],
                update=["lines", "on_duty", "updated_at", *(["team_lead_id"] if lead else [])])
            row = (await session.exec(select(Agent).where(col(Agent.staff_id) == req.staff_id)
                                      .execution_options(populate_existing=True))).one()
            return convert.agent(row)

    async def set_absence(self, principal: Principal, req: api.SetAgentAbsenceRequest
                          ) -> ticket_pb2.Agent:
        v = Violations()
        v.check(bool(req.staff_id), "staff_id", "required")
        if req.absent:
            v.check(bool(req.substitute_id) and req.substitute_id != req.staff_id,
                    "substitute_id", "name another agent")
        v.raise_if_any()
        if not principal.sees_branch and req.staff_id != principal.staff_id:
            raise PermissionDenied("agents set only their own absence", reason="OUT_OF_SCOPE")
        async with self.core.db.transaction() as session:
            row = await session.get(Agent, req.staff_id)
            if row is None:
                raise NotFound("agent {staff_id} is not on the desk", staff_id=req.staff_id)
            if req.absent:
                substitute = await session.get(Agent, req.substitute_id)
                if substitute is None:
                    raise InvalidArgument({"substitute_id": "not an agent on the desk"})
                if not substitute.active or substitute.absent:
                    # the tickets would sit with nobody to work them
                    raise InvalidArgument({"substitute_id": "absent or no longer active"})
            now = self.core.now()
            previous = row.substitute_id
            row.absent = req.absent
            row.substitute_id = req.substitute_id if req.absent else ""
            row.updated_at = now
            session.add(row)
            tickets = (await session.exec(select(Ticket).where(
                col(Ticket.owner_id) == row.staff_id,
                col(Ticket.state).in_([*UNRESOLVED, ticket_pb2.TICKET_STATE_RESOLVED])))).all()
            for t in tickets:
                if req.absent:
                    t.substitute_id = req.substitute_id
                    add_activity(session, t.id, "substitute", principal.staff_id,
                                 f"owner absent; {req.substitute_id} substitutes", now)
                elif t.substitute_id and t.substitute_id == previous:
                    t.substitute_id = ""
                    add_activity(session, t.id, "substitute", principal.staff_id,
                                 "owner back", now)
                t.updated_at = now
                session.add(t)
            return convert.agent(row)

    async def list_agents(self, req: api.ListAgentsRequest) -> api.ListAgentsResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(Agent).order_by(col(Agent.staff_id))
        if after:
            query = query.where(col(Agent.staff_id) > str(after[0]))
        if req.on_duty_only:
            query = query.where(col(Agent.on_duty).is_(True))
        async with self.core.db.read() as session:
            rows = list((await session.exec(query)).all())
        if req.line:
            rows = [r for r in rows if str(req.line) in r.lines.split(",")]
        more = len(rows) > size
        rows = rows[:size]
        return api.ListAgentsResponse(agents=[convert.agent(r) for r in rows],
                                      next_page_token=encode_token(rows[-1].staff_id)
                                      if more else "")

    async def list_policies(self) -> api.ListSlaPoliciesResponse:
        async with self.core.db.read() as session:
            rows = (await session.exec(select(SlaPolicy).order_by(
                col(SlaPolicy.line), col(SlaPolicy.priority)))).all()
        return api.ListSlaPoliciesResponse(policies=[convert.policy(r) for r in rows])

    async def update_policy(self, req: api.UpdateSlaPolicyRequest) -> ticket_pb2.SlaPolicy:
        p = req.policy
        v = Violations()
        v.check(p.line in LINES, "policy.line", "INVESTMENT or TECHNICAL")
        v.check(p.priority in PRIORITIES, "policy.priority", "NORMAL or URGENT")
        v.check(1 <= p.first_response_minutes <= 1440, "policy.first_response_minutes",
                "between 1 and 1440")
        v.check(1 <= p.resolution_minutes <= 30 * 1440, "policy.resolution_minutes",
                "between 1 minute and 30 days")
        if p.first_response_minutes and p.resolution_minutes:
            v.check(p.resolution_minutes >= p.first_response_minutes,
                    "policy.resolution_minutes", "must not be shorter than first response")
        v.raise_if_any()
        async with self.core.db.transaction() as session:
            values: dict[str, Any] = {"line": p.line, "priority": p.priority,
                      "first_response_minutes": p.first_response_minutes,
                      "resolution_minutes": p.resolution_minutes,
                      "resolution_business_days": p.resolution_business_days}
            await upsert(session, SlaPolicy, values, key=["line", "priority"])
            return convert.policy(SlaPolicy(**values))

    # ---- opening -------------------------------------------------------------------------

    def validate_open(self, principal: Principal, req: api.OpenTicketRequest) -> None:
        t = req.ticket
        v = Violations()
        v.check(t.line in LINES, "ticket.line", "INVESTMENT or TECHNICAL")
        v.check(t.priority in (0, *PRIORITIES), "ticket.priority", "NORMAL or URGENT")
        v.check(0 < len(t.summary.strip()) <= 200, "ticket.summary", "1 to 200 characters")
        v.check(len(t.description) <= 4000, "ticket.description", "at most 4000 characters")
        v.check(len(t.category) <= 60, "ticket.category", "at most 60 characters")
        v.check(len(t.caller_name) <= 100, "ticket.caller_name", "at most 100 characters")
        if t.caller_phone:
            v.check(bool(PHONE.match(t.caller_phone)), "ticket.caller_phone",
                    "digits, spaces or '-', optionally starting with '+'")
        elif not t.client_id:
            v.add("ticket.caller_phone", "give the caller's phone or identify the client, "
                                         "so the follow-up can reach them")
        if not req.auto_assign and not t.owner_id and not principal.has("service_agent"):
            v.add("ticket.owner_id", "name the owner or ask for auto_assign")
        v.check(len(t.owner_id) <= 100, "ticket.owner_id", "at most 100 characters")
        received = convert.when(v, "received_time", req.received_time)
        if received is not None:
            now = self.core.now()
            v.check(now - timedelta(days=30) <= received <= now, "received_time",
                    "within the last 30 days, not in the future")
        v.raise_if_any()

    async def _round_robin(self, session: AsyncSession, line: int) -> str:
        agents = sorted(
            (a for a in (await session.exec(select(Agent).where(
                col(Agent.on_duty).is_(True), col(Agent.active).is_(True),
                col(Agent.absent).is_(False)))).all()
             if str(line) in a.lines.split(",")),
            key=lambda a: a.staff_id)
        if not agents:
            raise FailedPrecondition("no agent is on duty for this line",
                                     reason="NO_AGENT_ON_DUTY")
        await insert_missing(session, LineCursor,
                             {"line": line, "last_agent_id": "", "version": 0}, key=["line"])
        cursor = (await session.exec(
            select(LineCursor).where(col(LineCursor.line) == line).with_for_update()
            .execution_options(populate_existing=True))).one()
        pick = next((a.staff_id for a in agents if a.staff_id > cursor.last_agent_id),
                    agents[0].staff_id)
        cursor.last_agent_id = pick
        cursor.version += 1
        session.add(cursor)
        return pick

    async def open(self, session: AsyncSession, principal: Principal, req: api.OpenTicketRequest,
                   client: client_pb2.Client | None) -> ticket_pb2.Ticket:
        t = req.ticket
        now = from_ts(req.received_time) or self.core.now()
        if req.auto_assign:
            owner = await self._round_robin(session, t.line)
        elif t.owner_id:
            agent = await session.get(Agent, t.owner_id)
            if agent is None or not agent.active:
                raise InvalidArgument({"ticket.owner_id": "not an active agent on the desk"})
            owner = t.owner_id
        else:
            owner = principal.staff_id
        owner_row = await session.get(Agent, owner)
        substitute = owner_row.substitute_id if owner_row and owner_row.absent else ""
        priority = t.priority or ticket_pb2.PRIORITY_NORMAL
        policy = await session.get(SlaPolicy, (t.line, priority))
        frt, res, business = (
            (policy.first_response_minutes, policy.resolution_minutes,
             policy.resolution_business_days) if policy else DEFAULT_POLICY[priority])
        frt_due, frt_warn = sla.due_and_warn(now, frt, 0, False, self.core.tz,
                                            self.core.calendar)
        res_due, res_warn = sla.due_and_warn(now, res, 0, business, self.core.tz,
                                            self.core.calendar)
        row = Ticket(
            id=new_id(), line=t.line, caller_name=t.caller_name, caller_phone=t.caller_phone,
            client_id=client.id if client else "", client_tier=client.tier if client else 0,
            category=t.category, priority=priority, summary=t.summary.strip(),
            description=t.description, complaint=t.complaint,
            state=ticket_pb2.TICKET_STATE_OPEN, owner_id=owner, substitute_id=substitute,
            frt_minutes=frt, frt_due_at=frt_due, frt_warn_at=frt_warn,
            res_minutes=res, res_business=business, res_due_at=res_due, res_warn_at=res_warn,
            opened_at=now, updated_at=now)
        session.add(row)
        if client is not None:
            await remember_client(session, client, now)
        add_activity(session, row.id, "opened", principal.staff_id,
                     f"owner {owner}" + (f", substitute {substitute}" if substitute else ""),
                     now)
        out = convert.ticket(row)
        emit(session, subject="branch.remote.ticket.opened",
             message=events_pb2.TicketOpened(
                 ticket_id=row.id, line=LINE_NAMES[row.line], client_id=row.client_id,
                 client_tier=row.client_tier, category=row.category,  # type: ignore[arg-type]
                 priority=PRIORITY_NAMES[row.priority], summary=row.summary,
                 owner_id=owner, complaint=row.complaint, open_time=out.open_time),
             about=row.id, now=now)
        log.info("ticket opened", ticket_id=row.id, owner_id=owner, line=row.line,
                 key_client=row.client_tier == client_pb2.TIER_KEY)
        return out

    # ---- reading -------------------------------------------------------------------------

    @staticmethod
    def _reads_all(principal: Principal) -> bool:
        """Supervisors, admins, services and compliance read every ticket; an agent reads the
        tickets they own, substitute on or handle (callers' names, phones and complaints)."""
        return principal.sees_branch or principal.has("compliance")

    @staticmethod
    def _works_on(principal: Principal, row: Ticket) -> bool:
        return principal.staff_id in {row.owner_id, row.substitute_id, row.handler_id} - {""}

    async def get(self, principal: Principal, ticket_id: str) -> ticket_pb2.Ticket:
        if not ticket_id:
            raise InvalidArgument({"id": "required"})
        async with self.core.db.read() as session:
            row = await session.get(Ticket, ticket_id)
            if row is None:
                raise NotFound("ticket {ticket_id} not found", ticket_id=ticket_id)
            if not self._reads_all(principal) and not self._works_on(principal, row):
                raise PermissionDenied("agents read the tickets they own, substitute on or "
                                       "handle", reason="OUT_OF_SCOPE")
            acts = list((await session.exec(select(TicketActivity).where(
                col(TicketActivity.ticket_id) == ticket_id).order_by(
                col(TicketActivity.seq)))).all())
        return convert.ticket(row, acts)

    async def list(self, principal: Principal, req: api.ListTicketsRequest
                   ) -> api.ListTicketsResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        if req.state and req.state not in ticket_pb2.TicketState.values():
            raise InvalidArgument({"state": "unknown state"})
        staff_id = req.staff_id
        if not self._reads_all(principal):
            if staff_id and staff_id != principal.staff_id:
                raise PermissionDenied("agents list their own tickets", reason="OUT_OF_SCOPE")
            staff_id = principal.staff_id
        query = select(Ticket).order_by(col(Ticket.id).desc())
        if after:
            query = query.where(col(Ticket.id) < str(after[0]))
        if req.state:
            query = query.where(col(Ticket.state) == req.state)
        if req.unresolved_only:
            query = query.where(col(Ticket.state).in_(UNRESOLVED))
        if req.line:
            query = query.where(col(Ticket.line) == req.line)
        if staff_id:
            query = query.where(or_(col(Ticket.owner_id) == staff_id,
                                    col(Ticket.substitute_id) == staff_id,
                                    col(Ticket.handler_id) == staff_id))
        if req.breached_only:
            query = query.where(or_(col(Ticket.frt_breached_at).is_not(None),
                                    col(Ticket.res_breached_at).is_not(None)))
        if req.complaint_only:
            query = query.where(col(Ticket.complaint).is_(True))
        if req.client_id:
            query = query.where(col(Ticket.client_id) == req.client_id)
        if req.follow_up_due_only:
            query = query.where(col(Ticket.state) == ticket_pb2.TICKET_STATE_RESOLVED,
                                col(Ticket.followup_due_at) <= self.core.now())
        async with self.core.db.read() as session:
            rows = list((await session.exec(query.limit(size + 1))).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListTicketsResponse(tickets=[convert.ticket(r) for r in rows],
                                       next_page_token=encode_token(rows[-1].id) if more else "")

    # ---- working a ticket ----------------------------------------------------------------

    async def _load(self, session: AsyncSession, principal: Principal, ticket_id: str) -> Ticket:
        if not ticket_id:
            raise InvalidArgument({"id": "required"})
        # locked: two replicas moving one ticket at once take turns (PostgreSQL); the second
        # sees the state the first left and is refused, not applied twice
        row = await session.get(Ticket, ticket_id, with_for_update=True)
        if row is None:
            raise NotFound("ticket {ticket_id} not found", ticket_id=ticket_id)
        if not principal.sees_branch and not self._works_on(principal, row):
            raise PermissionDenied("only the owner, the substitute or the handler works a ticket",
                                   reason="OUT_OF_SCOPE")
        return row

    def _recompute(self, row: Ticket) -> None:
        tz, cal = self.core.tz, self.core.calendar
        row.frt_due_at, row.frt_warn_at = sla.due_and_warn(
            row.opened_at, row.frt_minutes, row.frt_paused_s, False, tz, cal)
        row.res_due_at, row.res_warn_at = sla.due_and_warn(
            row.opened_at, row.res_minutes, row.res_paused_s, row.res_business, tz, cal)

    def _meet_first_response(self, row: Ticket, now: datetime) -> None:
        if row.frt_met_at is None:
            row.frt_met_at = now
            if now > as_utc(row.frt_due_at) and row.frt_breached_at is None:
                row.frt_breached_at = row.frt_due_at

    async def _mutate(self, principal: Principal, ticket_id: str, action) -> ticket_pb2.Ticket:  # type: ignore[no-untyped-def]
        async with self.core.db.transaction() as session:
            row = await self._load(session, principal, ticket_id)
            now = self.core.now()
            await action(session, row, now)
            row.updated_at = now
            session.add(row)
            return convert.ticket(row)

    async def respond(self, principal: Principal, req: api.RespondTicketRequest
                      ) -> ticket_pb2.Ticket:
        if not 0 < len(req.note) <= 2000:
            raise InvalidArgument({"note": "1 to 2000 characters"})

        async def act(session: AsyncSession, row: Ticket, now: datetime) -> None:
            if row.state not in (ticket_pb2.TICKET_STATE_OPEN,
                                 ticket_pb2.TICKET_STATE_IN_PROGRESS):
                raise FailedPrecondition("ticket is not open", reason="TICKET_NOT_OPEN")
            self._meet_first_response(row, now)
            row.state = ticket_pb2.TICKET_STATE_IN_PROGRESS
            add_activity(session, row.id, "responded", principal.staff_id, req.note, now)

        return await self._mutate(principal, req.id, act)

    async def pause(self, principal: Principal, req: api.PauseTicketRequest) -> ticket_pb2.Ticket:
        v = Violations()
        v.check(req.reason in (ticket_pb2.PAUSE_REASON_WAITING_CALLER,
                               ticket_pb2.PAUSE_REASON_WAITING_THIRD_PARTY), "reason",
                "WAITING_CALLER or WAITING_THIRD_PARTY")
        v.check(len(req.note) <= 500, "note", "at most 500 characters")
        v.raise_if_any()

        async def act(session: AsyncSession, row: Ticket, now: datetime) -> None:
            if row.state not in RUNNING:
                raise FailedPrecondition("only an open ticket can wait", reason="TICKET_NOT_OPEN")
            row.state = ticket_pb2.TICKET_STATE_WAITING
            row.paused_since = now
            row.pause_reason = req.reason
            row.pause_note = req.note
            reason = ticket_pb2.PauseReason.Name(req.reason)
            add_activity(session, row.id, "paused", principal.staff_id,
                         f"{reason}: {req.note}".rstrip(": "), now)

        return await self._mutate(principal, req.id, act)

    def _end_pause(self, row: Ticket, now: datetime) -> None:
        since = row.paused_since or now
        if row.frt_met_at is None:
            row.frt_paused_s += int(sla.elapsed(since, now, False, self.core.tz,
                                                self.core.calendar))
        row.res_paused_s += int(sla.elapsed(since, now, row.res_business, self.core.tz,
                                                  self.core.calendar))
        row.paused_since = None
        row.state = (ticket_pb2.TICKET_STATE_OPEN if row.frt_met_at is None
                     else ticket_pb2.TICKET_STATE_IN_PROGRESS)
        self._recompute(row)

    async def resume(self, principal: Principal, req: api.ResumeTicketRequest
                     ) -> ticket_pb2.Ticket:
        if len(req.note) > 2000:
            raise InvalidArgument({"note": "at most 2000 characters"})

        async def act(session: AsyncSession, row: Ticket, now: datetime) -> None:
            if row.state != ticket_pb2.TICKET_STATE_WAITING:
                raise FailedPrecondition("ticket is not waiting", reason="TICKET_NOT_WAITING")
            self._end_pause(row, now)
            add_activity(session, row.id, "resumed", principal.staff_id, req.note, now)

        return await self._mutate(principal, req.id, act)

    async def transfer(self, principal: Principal, req: api.TransferTicketRequest
                       ) -> ticket_pb2.Ticket:
        v = Violations()
        v.check(0 < len(req.department.strip()) <= 60, "department", "1 to 60 characters")
        v.check(len(req.handler_id) <= 100, "handler_id", "at most 100 characters")
        v.check(len(req.note) <= 2000, "note", "at most 2000 characters")
        v.raise_if_any()

        async def act(session: AsyncSession, row: Ticket, now: datetime) -> None:
            if row.state not in UNRESOLVED:
                raise FailedPrecondition("ticket is resolved", reason="TICKET_NOT_OPEN")
            if req.handler_id and req.handler_id == row.owner_id:
                raise InvalidArgument({"handler_id": "the owner already has it"})
            row.handler_department = req.department.strip()
            row.handler_id = req.handler_id
            row.transferred_at = now
            row.owner_reminded_at = None
            add_activity(session, row.id, "transferred", principal.staff_id,
                         f"to {row.handler_department}"
                         + (f" ({req.handler_id})" if req.handler_id else "")
                         + (f": {req.note}" if req.note else "")
                         + f"; owner stays {row.owner_id}", now)
            emit(session, subject="branch.remote.ticket.transferred",
                 message=events_pb2.TicketTransferred(
                     ticket_id=row.id, owner_id=row.owner_id, department=row.handler_department,
                     handler_id=row.handler_id, transfer_time=ts(now)),
                 about=row.id, now=now)

        return await self._mutate(principal, req.id, act)

    async def resolve(self, principal: Principal, req: api.ResolveTicketRequest
                      ) -> ticket_pb2.Ticket:
        if not 0 < len(req.resolution_note.strip()) <= 4000:
            raise InvalidArgument({"resolution_note": "1 to 4000 characters"})

        async def act(session: AsyncSession, row: Ticket, now: datetime) -> None:
            if row.state not in UNRESOLVED:
                raise FailedPrecondition("ticket is already resolved",
                                         reason="TICKET_NOT_OPEN")
            if row.state == ticket_pb2.TICKET_STATE_WAITING:
                self._end_pause(row, now)
            self._meet_first_response(row, now)
            row.res_met_at = now
            if now > as_utc(row.res_due_at) and row.res_breached_at is None:
                row.res_breached_at = row.res_due_at
            row.resolved_at = now
            row.state = ticket_pb2.TICKET_STATE_RESOLVED
            row.resolution_note = req.resolution_note.strip()
            row.followup_due_at = now + FOLLOW_UP_DELAY
            add_activity(session, row.id, "resolved", principal.staff_id,
                         row.resolution_note, now)
            within = row.frt_breached_at is None and row.res_breached_at is None
            emit(session, subject="branch.remote.ticket.resolved",
                 message=events_pb2.TicketResolved(
                     ticket_id=row.id, owner_id=row.owner_id, client_id=row.client_id,
                     within_sla=within, resolve_time=ts(now),
                     follow_up_due_time=ts(row.followup_due_at)),
                 about=row.id, now=now)

        return await self._mutate(principal, req.id, act)

    async def reopen(self, principal: Principal, req: api.ReopenTicketRequest
                     ) -> ticket_pb2.Ticket:
        if not 0 < len(req.reason.strip()) <= 2000:
            raise InvalidArgument({"reason": "1 to 2000 characters"})

        async def act(session: AsyncSession, row: Ticket, now: datetime) -> None:
            if row.state not in (ticket_pb2.TICKET_STATE_RESOLVED,
                                 ticket_pb2.TICKET_STATE_CLOSED):
                raise FailedPrecondition("only a resolved or closed ticket reopens",
                                         reason="TICKET_NOT_RESOLVED")
            # the time it stood resolved does not count against the resolution target
            row.res_paused_s += int(sla.elapsed(row.resolved_at or now, now, row.res_business,
                                                self.core.tz, self.core.calendar))
            row.res_met_at = None
            row.followup_due_at = None
            row.closed_at = None
            row.reopen_count += 1
            row.state = ticket_pb2.TICKET_STATE_IN_PROGRESS
            self._recompute(row)
            add_activity(session, row.id, "reopened", principal.staff_id, req.reason.strip(), now)
            emit(session, subject="branch.remote.ticket.reopened",
                 message=events_pb2.TicketReopened(ticket_id=row.id, owner_id=row.owner_id,
                                                   reopen_count=row.reopen_count,
                                                   reopen_time=ts(now)),
                 about=row.id, now=now)

        return await self._mutate(principal, req.id, act)

    async def follow_up(self, session: AsyncSession, principal: Principal,
                        req: api.RecordFollowUpRequest) -> ticket_pb2.Ticket:
        v = Violations()
        v.check(req.outcome in cpb.CallbackOutcome.values() and req.outcome != 0, "outcome",
                "REACHED, NO_ANSWER, WRONG_NUMBER, CALL_BACK_LATER or DECLINED")
        if req.outcome == cpb.CALLBACK_OUTCOME_REACHED:
            v.check(1 <= req.satisfaction <= 5, "satisfaction", "1 to 5 when reached")
        else:
            v.check(req.satisfaction == 0, "satisfaction", "only when the caller was reached")
        v.check(len(req.notes) <= 2000, "notes", "at most 2000 characters")
        v.raise_if_any()
        row = await self._load(session, principal, req.id)
        if row.state != ticket_pb2.TICKET_STATE_RESOLVED:
            raise FailedPrecondition("the follow-up comes after resolution",
                                     reason="TICKET_NOT_RESOLVED")
        now = self.core.now()
        record = CallbackRecord(id=new_id(), ticket_id=row.id, client_id=row.client_id,
                                agent_id=principal.staff_id, outcome=req.outcome,
                                notes=req.notes, call_time=now, recorded_at=now,
                                satisfaction=req.satisfaction)
        session.add(record)
        if req.outcome == cpb.CALLBACK_OUTCOME_REACHED:
            row.state = ticket_pb2.TICKET_STATE_CLOSED
            row.satisfaction = req.satisfaction
            row.closed_at = now
            add_activity(session, row.id, "follow_up", principal.staff_id,
                         f"satisfaction {req.satisfaction}"
                         + (f": {req.notes}" if req.notes else ""), now)
            add_activity(session, row.id, "closed", principal.staff_id, "", now)
            emit(session, subject="branch.remote.ticket.closed",
                 message=events_pb2.TicketClosed(ticket_id=row.id, owner_id=row.owner_id,
                                                 satisfaction=req.satisfaction,
                                                 close_time=ts(now)),
                 about=row.id, now=now)
        else:
            row.followup_due_at = now + FOLLOW_UP_RETRY
            add_activity(session, row.id, "follow_up", principal.staff_id,
                         cpb.CallbackOutcome.Name(req.outcome), now)
        row.updated_at = now
        session.add(row)
        emit(session, subject="branch.remote.callback.recorded",
             message=events_pb2.CallbackRecorded(
                 callback_id=record.id, ticket_id=row.id, client_id=row.client_id,
                 agent_id=principal.staff_id, outcome=req.outcome,
                 satisfaction=req.satisfaction, call_time=ts(now)),
             about=record.id, now=now)
        return convert.ticket(row)

    # ---- events from the VIP service -----------------------------------------------------

    async def link_advisory(self, session: AsyncSession, ticket_id: str, advisory_id: str,
                            now: datetime) -> bool:
        row = await session.get(Ticket, ticket_id)
        if row is None:
            log.warning("advisory names an unknown ticket", ticket_id=ticket_id)
            return False
        if row.vip_advisory_id == advisory_id:
            return False
        row.vip_advisory_id = advisory_id
        row.updated_at = now
        session.add(row)
        add_activity(session, row.id, "vip_linked", "", f"VIP advisory {advisory_id}", now)
        return True

    # ---- the SLA timer -------------------------------------------------------------------

    async def check_sla(self) -> int:
        """One pass: 75% warnings and escalation levels due by now. Safe with replicas: each
        step is a conditional update, and its event is written only when the update won."""
        now = self.core.now()
        async with self.core.db.read() as session:
            rows = list((await session.exec(select(Ticket).where(
                col(Ticket.state).in_(RUNNING),
                or_(
                    (col(Ticket.frt_met_at).is_(None)) & (col(Ticket.frt_warn_at) <= now)
                    & ((col(Ticket.frt_warned_at).is_(None)) | (col(Ticket.frt_escalation) < 3)),
                    (col(Ticket.res_met_at).is_(None)) & (col(Ticket.res_warn_at) <= now)
                    & ((col(Ticket.res_warned_at).is_(None)) | (col(Ticket.res_escalation) < 3)),
                )))).all())
            agents = {a.staff_id: a for a in (await session.exec(select(Agent))).all()}
        raised = 0
        for row in rows:
            for target, p in TARGETS.items():
                if getattr(row, f"{p}_met_at") is not None:
                    continue
                raised += await self._check_target(row, target, p, now, agents)
        return raised + await self._remind_owners(now)

    async def _remind_owners(self, now: datetime) -> int:
        """While another department works a ticket, its owner is reminded every few hours."""
        cutoff = now - OWNER_REMINDER_EVERY
        due = or_(col(Ticket.owner_reminded_at) <= cutoff,
                  (col(Ticket.owner_reminded_at).is_(None))
                  & (col(Ticket.transferred_at) <= cutoff))
        async with self.core.db.read() as session:
            rows = list((await session.exec(select(Ticket).where(
                col(Ticket.state).in_(UNRESOLVED), col(Ticket.handler_department) != "",
                due))).all())
        sent = 0
        for row in rows:
            async with self.core.db.transaction() as session:
                result = await session.exec(
                    update(Ticket)
                    .where(col(Ticket.id) == row.id, col(Ticket.state).in_(UNRESOLVED), due)
                    .values(owner_reminded_at=now))
                if result.rowcount != 1:
                    continue
                add_activity(session, row.id, "reminded", "",
                             f"{row.handler_department} still works it; owner {row.owner_id} "
                             "follows up", now)
                emit(session, subject="branch.remote.ticket.owner_reminded",
                     message=events_pb2.TicketOwnerReminded(
                         ticket_id=row.id, owner_id=row.owner_id,
                         department=row.handler_department,
                         transfer_time=ts(row.transferred_at), remind_time=ts(now)),
                     about=row.id, now=now)
                sent += 1
        return sent

    async def _check_target(self, row: Ticket, target: str, p: str, now: datetime,
                            agents: dict[str, Agent]) -> int:
        raised = 0
        warn_at = as_utc(getattr(row, f"{p}_warn_at"))
        due = as_utc(getattr(row, f"{p}_due_at"))
        met, warned, level_col = (getattr(Ticket, f"{p}_met_at"),
                                  getattr(Ticket, f"{p}_warned_at"),
                                  getattr(Ticket, f"{p}_escalation"))
        if now >= warn_at and getattr(row, f"{p}_warned_at") is None:
            async with self.core.db.transaction() as session:
                result = await session.exec(
                    update(Ticket)
                    .where(col(Ticket.id) == row.id, col(warned).is_(None), col(met).is_(None),
                           col(Ticket.state).in_(RUNNING))
                    .values({f"{p}_warned_at": now}))
                if result.rowcount == 1:
                    add_activity(session, row.id, "warned", "",
                                 f"75% of the {target.replace('_', ' ')} target used", now)
                    emit(session, subject="branch.remote.ticket.sla_warning",
                         message=events_pb2.TicketSlaWarning(
                             ticket_id=row.id, owner_id=row.owner_id, target=target,
                             due_time=ts(due)),
                         about=row.id, now=now)
                    raised += 1
        minutes = getattr(row, f"{p}_minutes")
        business = p == "res" and row.res_business
        wanted = sla.escalation_level(due, minutes, now, business, self.core.tz,
                                      self.core.calendar)
        for level in range(getattr(row, f"{p}_escalation") + 1, wanted + 1):
            if level == 1:
                recipient = row.owner_id
            elif level == 2:
                owner = agents.get(row.owner_id)
                recipient = owner.team_lead_id if owner else ""
            else:
                recipient = ""
            async with self.core.db.transaction() as session:
                values: dict[str, Any] = {f"{p}_escalation": level}
                if level == 1:
                    values[f"{p}_breached_at"] = due
                result = await session.exec(
                    update(Ticket)
                    .where(col(Ticket.id) == row.id, level_col == level - 1,
                           col(met).is_(None), col(Ticket.state).in_(RUNNING))
                    .values(values))
                if result.rowcount != 1:
                    break
                session.add(TicketEscalation(id=new_id(), ticket_id=row.id,
                                             owner_id=row.owner_id, target=target, level=level,
                                             recipient_id=recipient, raised_at=now))
                who = {1: "owner", 2: "team lead", 3: "supervisor"}[level]
                add_activity(session, row.id, "escalated", "",
                             f"{target.replace('_', ' ')} breached: level {level} ({who}"
                             + (f" {recipient}" if recipient else "") + ")", now)
                emit(session, subject="branch.remote.ticket.escalated",
                     message=events_pb2.TicketEscalated(
                         ticket_id=row.id, owner_id=row.owner_id, target=target, level=level,
                         recipient_id=recipient, due_time=ts(due), escalate_time=ts(now)),
                     about=row.id, now=now)
                raised += 1
            if level == 1:
                metrics.sla_breached("remote", f"ticket_{target}")
        return raised


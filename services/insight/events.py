"""The read model: what insight consumes from the other services' events. Every figure insight
shows is built from these tables, never from another service's database. Each handler runs in
the consumer's transaction that records the event id, so a redelivery counts once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, tzinfo
from typing import Any

from branch.insight.v1 import inspection_pb2
from branch.onsite.v1 import events_pb2 as onsite_events
from branch.remote.v1 import events_pb2 as remote_events
from branch.vip.v1 import events_pb2 as vip_events
from google.protobuf.message import DecodeError, Message
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import day_start, local_date
from services.common.consumer import PermanentError, Subscription
from services.common.events import Event
from services.common.protos import from_ts
from services.common.upsert import insert_missing
from services.insight import rebuild
from services.insight.models import Activity, Campaign, Interaction, Ticket

K = inspection_pb2
AGENTS = "service_agent"
BROKERS = "broker"


def month_key(when: datetime, tz: tzinfo) -> str:
    """The branch-local month of an instant, "YYYY-MM"."""
    return local_date(when, tz).strftime("%Y-%m")


class ReadModel:
    """Applies one event to the read-model tables."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._handlers: dict[str, tuple[type[Message], Callable[..., Any]]] = {
            "branch.remote.ticket.opened": (remote_events.TicketOpened, self._ticket_opened),
            "branch.remote.ticket.escalated": (remote_events.TicketEscalated,
                                               self._supervised),
            "branch.remote.ticket.owner_reminded": (remote_events.TicketOwnerReminded,
                                                    self._supervised),
            "branch.remote.ticket.resolved": (remote_events.TicketResolved,
                                              self._ticket_resolved),
            "branch.remote.ticket.reopened": (remote_events.TicketReopened,
                                              self._ticket_reopened),
            "branch.remote.ticket.closed": (remote_events.TicketClosed, self._ticket_closed),
            "branch.remote.callback.recorded": (remote_events.CallbackRecorded, self._callback),
            "branch.remote.campaign.created": (remote_events.CampaignCreated, self._campaign),
            "branch.remote.callback.quota_missed": (remote_events.CallbackQuotaMissed,
                                                    self._quota_missed),
            "branch.onsite.visit.recorded": (onsite_events.VisitRecorded, self._visit),
            "branch.onsite.patrol.recorded": (onsite_events.PatrolRecorded, self._patrol),
            "branch.onsite.consultation.delivered": (onsite_events.ConsultationDelivered,
                                                     self._consultation_delivered),
            "branch.onsite.consultation.overdue": (onsite_events.ConsultationOverdue,
                                                   self._consultation_overdue),
            "branch.vip.advisory.opened": (vip_events.AdvisoryOpened, self._advisory_opened),
            "branch.vip.advisory.answered": (vip_events.AdvisoryAnswered,
                                             self._advisory_answered),
            "branch.vip.relay.delivered": (vip_events.RelayDelivered, self._relay_delivered),
        }

    @property
    def subjects(self) -> list[str]:
        return sorted(self._handlers)

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        handler = self._handlers.get(event.nats_subject)
        if handler is None:
            return
        message_type, apply = handler
        try:
            message = event.parse(message_type)
        except DecodeError as exc:
            raise PermanentError(f"undecodable {message_type.__name__}") from exc
        await apply(session, event, message)

    # ---- helpers ---------------------------------------------------------------------------

    async def _count(self, session: AsyncSession, event: Event, kind: str, when: datetime,
                     person_id: str = "", amount: int = 1) -> None:
        await insert_missing(
            session, Activity,
            {"event_id": event.id, "kind": kind, "person_id": person_id[:100],
             "occurred_at": when, "local_day": local_date(when, self.tz), "amount": amount},
            ["event_id", "kind"])

    async def _interaction(self, session: AsyncSession, kind: int, interaction_id: str,
                           person_id: str, team: str, client_id: str, when: datetime) -> None:
        if not interaction_id or not person_id:
            return
        await insert_missing(
            session, Interaction,
            {"id": f"{kind}:{interaction_id}"[:80], "kind": kind,
             "interaction_id": interaction_id[:64], "person_id": person_id[:100], "team": team,
             "client_id": client_id[:64], "occurred_at": when,
             "month": month_key(when, self.tz)},
            ["id"])

    async def _ticket(self, session: AsyncSession, ticket_id: str) -> Ticket:
        """The ticket's row, made if this is the first of its events to arrive."""
        await insert_missing(
                               session, Ticket,
                               {"ticket_id": ticket_id[:64], "owner_id": ""}, ["ticket_id"])
        ticket = await session.get(Ticket, ticket_id[:64], populate_existing=True)
        assert ticket is not None
        return ticket

    @staticmethod
    def _time(value: Any, event: Event) -> datetime:
        return from_ts(value) or event.time

    # ---- remote ----------------------------------------------------------------------------

    async def _ticket_opened(self, session: AsyncSession, event: Event,
                             m: remote_events.TicketOpened) -> None:
        when = self._time(m.open_time, event)
        ticket = await self._ticket(session, m.ticket_id)
        ticket.opened_at = when
        ticket.owner_id = m.owner_id[:100]
        session.add(ticket)
        await self._count(session, event, "accepted", when, m.owner_id)

    async def _supervised(self, session: AsyncSession, event: Event, m: Any) -> None:
        stamp = (m.escalate_time if isinstance(m, remote_events.TicketEscalated)
                 else m.remind_time)
        when = self._time(stamp, event)
        await self._count(session, event, "supervised", when, m.owner_id)

    async def _ticket_resolved(self, session: AsyncSession, event: Event,
                               m: remote_events.TicketResolved) -> None:
        when = self._time(m.resolve_time, event)
        ticket = await self._ticket(session, m.ticket_id)
        ticket.resolved_at = when
        session.add(ticket)
        await self._count(session, event, "feedback", when, m.owner_id)
        if m.within_sla:
            await self._count(session, event, "feedback_sla", when, m.owner_id)
        await self._interaction(session, K.INTERACTION_KIND_TICKET, m.ticket_id, m.owner_id,
                                AGENTS, m.client_id, when)

    async def _ticket_reopened(self, session: AsyncSession, event: Event,
                               m: remote_events.TicketReopened) -> None:
        ticket = await session.get(Ticket, m.ticket_id)
        if ticket is not None:
            ticket.resolved_at = None
            session.add(ticket)

    async def _ticket_closed(self, session: AsyncSession, event: Event,
                             m: remote_events.TicketClosed) -> None:
        when = self._time(m.close_time, event)
        ticket = await session.get(Ticket, m.ticket_id)
        if ticket is not None and ticket.resolved_at is None:
            ticket.resolved_at = when
            session.add(ticket)
        await self._count(session, event, "ticket_closed", when, m.owner_id)

    async def _callback(self, session: AsyncSession, event: Event,
                        m: remote_events.CallbackRecorded) -> None:
        when = self._time(m.call_time, event)
        await self._count(session, event, "callback", when, m.agent_id)
        await self._interaction(session, K.INTERACTION_KIND_CALLBACK, m.callback_id,
                                m.agent_id, AGENTS, m.client_id, when)

    async def _campaign(self, session: AsyncSession, event: Event,
                        m: remote_events.CampaignCreated) -> None:
        await self._count(session, event, "callback_target", self._time(m.create_time, event),
                          amount=max(m.target_count, 0))
        await insert_missing(
            session, Campaign,
            {"campaign_id": m.campaign_id[:64], "daily_quota": max(m.daily_quota, 0),
             "start_date": _day(m.start_date), "end_date": _day(m.end_date),
             "agent_ids": "," + ",".join(a for a in m.agent_ids if "," not in a) + ","},
            ["campaign_id"])

    async def _quota_missed(self, session: AsyncSession, event: Event,
                            m: remote_events.CallbackQuotaMissed) -> None:
        day = _day(m.day)  # the branch-local day the quota was missed on
        when = day_start(day, self.tz) if day else event.time
        await self._count(session, event, "quota_missed", when, m.agent_id)

    # ---- onsite ----------------------------------------------------------------------------

    async def _visit(self, session: AsyncSession, event: Event,
                     m: onsite_events.VisitRecorded) -> None:
        await self._count(session, event, "visit", self._time(m.visit.visit_time, event),
                          m.visit.client_manager_id)

    async def _patrol(self, session: AsyncSession, event: Event,
                      m: onsite_events.PatrolRecorded) -> None:
        await self._count(session, event, "patrol", self._time(m.patrol.patrol_time, event),
                          m.patrol.client_manager_id)

    async def _consultation_delivered(self, session: AsyncSession, event: Event,
                                      m: onsite_events.ConsultationDelivered) -> None:
        await self._count(session, event, "consultation_delivered",
                          self._time(m.deliver_time, event), m.consultant_id)

    async def _consultation_overdue(self, session: AsyncSession, event: Event,
                                    m: onsite_events.ConsultationOverdue) -> None:
        await self._count(session, event, "consultation_overdue", event.time, m.consultant_id)

    # ---- vip -------------------------------------------------------------------------------

    async def _advisory_opened(self, session: AsyncSession, event: Event,
                               m: vip_events.AdvisoryOpened) -> None:
        await self._count(session, event, "advisory_opened", self._time(m.open_time, event),
                          m.broker_id)

    async def _advisory_answered(self, session: AsyncSession, event: Event,
                                 m: vip_events.AdvisoryAnswered) -> None:
        when = self._time(m.answer_time, event)
        await self._count(session, event, "advisory_answered", when, m.broker_id)
        if m.late:
            await self._count(session, event, "advisory_late", when, m.broker_id)
        await self._interaction(session, K.INTERACTION_KIND_ADVISORY, m.advisory_id,
                                m.broker_id, BROKERS, m.client_id, when)

    async def _relay_delivered(self, session: AsyncSession, event: Event,
                               m: vip_events.RelayDelivered) -> None:
        await self._count(session, event, "research_delivered",
                          self._time(m.deliver_time, event), m.broker_id)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def subscriptions(model: ReadModel) -> list[Subscription]:
    return [Subscription(rebuild.CONSUMER, model.subjects, model)]

"""A month of branch activity as the other services publish it (real protos, real NATS), and
the figures expected from it, counted here independently of insight's code."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import nats
from branch.onsite.v1 import day_pb2
from branch.onsite.v1 import events_pb2 as onsite_events
from branch.remote.v1 import events_pb2 as remote_events
from branch.vip.v1 import events_pb2 as vip_events
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

SHANGHAI = ZoneInfo("Asia/Shanghai")
AGENTS = [f"agent-{i}" for i in range(1, 5)]
BROKERS = [f"broker-{i}" for i in range(1, 4)]
MANAGERS = ["cm-1", "cm-2"]
# the month's callback campaign: 2 calls a working day from the 10th on
CAMPAIGN_QUOTA = 2
CAMPAIGN_FROM = 10


def stamp(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


@dataclass
class Published:
    subject: str
    message: Message
    when: datetime
    person: str = ""
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def local_day(self) -> date:
        return self.when.astimezone(SHANGHAI).date()


def build_month(year: int, month: int, seed: int = 7) -> list[Published]:
    """About 150 events around a branch-local month, including instants just after local
    midnight on the 1st (in the month) and just after local midnight on the next 1st (not)."""
    rng = random.Random(seed)
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    out: list[Published] = []

    def at(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime(day.year, day.month, day.day, hour, minute,
                        tzinfo=SHANGHAI).astimezone(UTC)

    days = [first + timedelta(days=n) for n in range((nxt - first).days)]
    ticket_no = 0
    for day in days:
        for _ in range(rng.randint(0, 3)):
            ticket_no += 1
            tid = f"t-{ticket_no}"
            agent = rng.choice(AGENTS)
            opened = at(day, rng.randint(9, 16), rng.randint(0, 59))
            out.append(Published("branch.remote.ticket.opened", remote_events.TicketOpened(
                ticket_id=tid, line="hotline", client_id=f"c-{ticket_no}", owner_id=agent,
                category="query", priority="normal", summary="",
                open_time=stamp(opened)), opened, agent))
            if rng.random() < 0.2:
                esc = opened + timedelta(hours=5)
                out.append(Published("branch.remote.ticket.escalated",
                                     remote_events.TicketEscalated(
                                         ticket_id=tid, owner_id=agent, target="resolve",
                                         level=1, escalate_time=stamp(esc)), esc, agent))
            if rng.random() < 0.8:
                resolved = opened + timedelta(hours=rng.choice([1, 3, 30, 80]))
                out.append(Published("branch.remote.ticket.resolved",
                                     remote_events.TicketResolved(
                                         ticket_id=tid, owner_id=agent, client_id=f"c-{ticket_no}",
                                         within_sla=resolved - opened < timedelta(hours=24),
                                         resolve_time=stamp(resolved)), resolved, agent))
        for agent in AGENTS:
            if rng.random() < 0.5:
                when = at(day, 14, rng.randint(0, 59))
                cb = uuid.uuid4().hex[:8]
                out.append(Published("branch.remote.callback.recorded",
                                     remote_events.CallbackRecorded(
                                         callback_id=cb, campaign_id="camp-1", client_id="c-x",
                                         agent_id=agent, satisfaction=5,
                                         call_time=stamp(when)), when, agent))
        for broker in BROKERS:
            if rng.random() < 0.3:
                opened = at(day, 10)
                adv = uuid.uuid4().hex[:8]
                out.append(Published("branch.vip.advisory.opened", vip_events.AdvisoryOpened(
                    advisory_id=adv, client_id="vip-1", broker_id=broker,
                    open_time=stamp(opened)), opened, broker))
                answered = opened + timedelta(hours=2)
                out.append(Published("branch.vip.advisory.answered",
                                     vip_events.AdvisoryAnswered(
                                         advisory_id=adv, client_id="vip-1", broker_id=broker,
                                         answer_time=stamp(answered), late=rng.random() < 0.25),
                                     answered, broker))
        for cm in MANAGERS:
            if rng.random() < 0.6:
                when = at(day, 11)
                out.append(Published("branch.onsite.visit.recorded", onsite_events.VisitRecorded(
                    visit=day_pb2.Visit(id=uuid.uuid4().hex[:8], client_manager_id=cm,
                                        client_id="c-v", visit_time=stamp(when))), when, cm))
            if rng.random() < 0.4:
                when = at(day, 15)
                out.append(Published("branch.onsite.patrol.recorded",
                                     onsite_events.PatrolRecorded(patrol=day_pb2.Patrol(
                                         id=uuid.uuid4().hex[:8], client_manager_id=cm,
                                         patrol_time=stamp(when))), when, cm))
    # at the edges: 00:30 local on the 1st is in the month; 00:30 local on the next 1st is not
    for edge in (at(first, 0, 30), at(nxt, 0, 30)):
        cb = uuid.uuid4().hex[:8]
        out.append(Published("branch.remote.callback.recorded", remote_events.CallbackRecorded(
            callback_id=cb, campaign_id="camp-1", client_id="c-x", agent_id=AGENTS[0],
            satisfaction=4, call_time=stamp(edge)), edge, AGENTS[0]))
    # raised by remote's timer just after local midnight, about the day before (the last day)
    raised = at(nxt, 0, 20)
    out.append(Published("branch.remote.callback.quota_missed",
                         remote_events.CallbackQuotaMissed(
                             campaign_id="camp-1", agent_id=AGENTS[1],
                             day=(nxt - timedelta(days=1)).isoformat(), daily_quota=2, made=0),
                         raised, AGENTS[1]))
    created = at(first, 9)
    out.append(Published("branch.remote.campaign.created", remote_events.CampaignCreated(
        campaign_id="camp-1", target_count=40, agent_ids=AGENTS, create_time=stamp(created),
        daily_quota=CAMPAIGN_QUOTA, start_date=first.replace(day=CAMPAIGN_FROM).isoformat(),
        end_date=(nxt + timedelta(days=20)).isoformat()),
        created))
    return out


async def publish_all(nats_url: str, events: list[Published]) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for e in events:
            await js.publish(e.subject, e.message.SerializeToString(), headers={
                "Nats-Msg-Id": e.event_id, "ce-specversion": "1.0", "ce-id": e.event_id,
                "ce-type": e.subject, "ce-source": "/branch/test",
                "ce-time": e.when.isoformat().replace("+00:00", "Z"), "ce-subject": "",
                "ce-dataschema": e.message.DESCRIPTOR.full_name,
                "content-type": "application/protobuf"})
    finally:
        await nc.close()


def expected(events: list[Published], first: date, last: date) -> dict[str, object]:
    """The report's figures, counted straight from the published events."""
    inside = [e for e in events if first <= e.local_day <= last]
    count = Counter(e.subject.rsplit(".", 2)[-2] + "." + e.subject.rsplit(".", 1)[-1]
                    for e in inside)
    resolved = [e for e in inside if e.subject.endswith("ticket.resolved")]
    end = datetime(last.year, last.month, last.day, tzinfo=SHANGHAI).astimezone(UTC) + \
        timedelta(days=1)
    opened = {e.message.ticket_id: e.when for e in events
              if isinstance(e.message, remote_events.TicketOpened) and e.when < end}
    done = {e.message.ticket_id for e in events
            if isinstance(e.message, remote_events.TicketResolved) and e.when < end}
    waiting: Counter[str] = Counter()
    for tid, when in opened.items():
        if tid in done:
            continue
        age = (end - when).total_seconds() / 86400
        waiting["0-1d" if age < 1 else "1-3d" if age < 3 else "3-7d" if age < 7 else ">7d"] += 1
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return {
        "accepted": count["ticket.opened"],
        "supervised": count["ticket.escalated"],
        "feedback": count["ticket.resolved"],
        "resolved_within_sla": sum(1 for e in resolved
                                   if isinstance(e.message, remote_events.TicketResolved)
                                   and e.message.within_sla),
        "callbacks": count["callback.recorded"],
        "visits": count["visit.recorded"],
        "patrols": count["patrol.recorded"],
        "advisories_opened": count["advisory.opened"],
        "advisories_answered": count["advisory.answered"],
        "advisories_late": sum(1 for e in inside
                               if isinstance(e.message, vip_events.AdvisoryAnswered)
                               and e.message.late),
        "callback_quota_missed": sum(
            1 for e in events if isinstance(e.message, remote_events.CallbackQuotaMissed)
            and first <= date.fromisoformat(e.message.day) <= last),
        "callback_target": sum(e.message.target_count for e in inside
                               if isinstance(e.message, remote_events.CampaignCreated)),
        "working_days": sum(1 for d in days if chinese_calendar.is_workday(d)),
        "waiting": dict(waiting),
    }


def interactions(events: list[Published], first: date, last: date) -> dict[str, set[str]]:
    """person -> ids of the interactions the month's sample is drawn from."""
    pool: dict[str, set[str]] = {}
    for e in events:
        if not first <= e.local_day <= last:
            continue
        if isinstance(e.message, remote_events.TicketResolved):
            pool.setdefault(e.person, set()).add(e.message.ticket_id)
        elif isinstance(e.message, remote_events.CallbackRecorded):
            pool.setdefault(e.person, set()).add(e.message.callback_id)
        elif isinstance(e.message, vip_events.AdvisoryAnswered):
            pool.setdefault(e.person, set()).add(e.message.advisory_id)
    return pool

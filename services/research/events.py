"""What research consumes: VIP advisory questions, and the relay and consultation events that
feed the distribution ledger and the reach figures."""

from __future__ import annotations

from branch.onsite.v1 import events_pb2 as onsite_events
from branch.research.v1 import distribution_pb2
from branch.vip.v1 import events_pb2 as vip_events
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock
from services.common.consumer import Subscription
from services.common.events import Event
from services.common.protos import from_ts
from services.research import ledger
from services.research.checks import parse_event
from services.research.models import Note
from services.research.requests import Requests

K = distribution_pb2
ADVISORY_REQUESTED = "branch.vip.advisory.research_requested"
RELAY_PLANNED = "branch.vip.relay.planned"
RELAY_DELIVERED = "branch.vip.relay.delivered"
RELAY_ACKNOWLEDGED = "branch.vip.relay.acknowledged"
RELAY_CANCELLED = "branch.vip.relay.cancelled"
CONSULTATION_DELIVERED = "branch.onsite.consultation.delivered"
REACH_SUBJECTS = (RELAY_PLANNED, RELAY_DELIVERED, RELAY_ACKNOWLEDGED, RELAY_CANCELLED,
                  CONSULTATION_DELIVERED)


class ReachRecorder:
    """Appends what the relay and consultation events report to the ledger."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def __call__(self, session: AsyncSession, event: Event) -> None:
        await self._record(session, event)

    async def _record(self, session: AsyncSession, event: Event) -> None:
        now = self.clock.now()
        subject = event.nats_subject
        if subject == RELAY_PLANNED:
            planned = parse_event(event, vip_events.RelaysPlanned)
            await ledger.record(
                session, kind=K.DISTRIBUTION_RECORD_KIND_RELAYS_PLANNED,
                note_id=planned.note_id, revision=planned.revision,
                occurred_at=from_ts(planned.publish_time) or event.time, now=now,
                source_event_id=event.id, count=planned.targeted,
                withheld=planned.withheld_for_suitability,
                detail=f"targeted={planned.targeted} "
                       f"withheld_for_suitability={planned.withheld_for_suitability}",
            )
        elif subject == RELAY_DELIVERED:
            d = parse_event(event, vip_events.RelayDelivered)
            await ledger.record(
                session, kind=K.DISTRIBUTION_RECORD_KIND_DELIVERED, note_id=d.note_id,
                revision=d.revision, actor_id=d.broker_id, client_id=d.client_id,
                channel=d.channel or "broker", relay_id=d.relay_id,
                occurred_at=from_ts(d.deliver_time) or event.time, now=now,
                source_event_id=event.id,
            )
        elif subject == RELAY_ACKNOWLEDGED:
            a = parse_event(event, vip_events.RelayAcknowledged)
            await ledger.record(
                session, kind=K.DISTRIBUTION_RECORD_KIND_ACKNOWLEDGED, note_id=a.note_id,
                revision=a.revision, actor_id=a.broker_id, client_id=a.client_id,
                relay_id=a.relay_id, occurred_at=from_ts(a.acknowledge_time) or event.time,
                now=now, source_event_id=event.id,
            )
        elif subject == RELAY_CANCELLED:
            x = parse_event(event, vip_events.RelaysCancelled)
            await ledger.record(
                session, kind=K.DISTRIBUTION_RECORD_KIND_RELAYS_CANCELLED, note_id=x.note_id,
                revision=x.revision, occurred_at=from_ts(x.cancel_time) or event.time, now=now,
                source_event_id=event.id, count=x.cancelled, detail=x.reason[:500],
            )
        elif subject == CONSULTATION_DELIVERED:
            c = parse_event(event, onsite_events.ConsultationDelivered)
            for note_id in dict.fromkeys(c.note_ids):
                note = await session.get(Note, note_id)
                await ledger.record(
                    session, kind=K.DISTRIBUTION_RECORD_KIND_DELIVERED, note_id=note_id,
                    revision=note.published_revision if note else 0,
                    actor_id=c.consultant_id, client_id=c.client_id,
                    channel=ledger.ONSITE_CHANNEL, relay_id=c.form_id,
                    occurred_at=from_ts(c.deliver_time) or event.time, now=now,
                    source_event_id=event.id,
                )


def subscriptions(requests: Requests, clock: Clock) -> list[Subscription]:
    return [
        Subscription("advisory-requests", [ADVISORY_REQUESTED], requests.on_advisory),
        Subscription("reach", list(REACH_SUBJECTS), ReachRecorder(clock)),
    ]

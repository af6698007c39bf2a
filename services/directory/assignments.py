"""Assignment scope: staff may read the contact details of a client whose work is assigned to
them, though the client is not theirs.

The directory learns assignments from the events of the services that make them, so it
decides alone, never reading another service's database: vip's advisory opened (to the on-call
or backup broker when the client's own broker is off shift) and escalated open a grant for the
assignee; answered and closed end every grant of that advisory. Each read through a grant is
audited (audit_record: method GetClient, resource client/<id> via <source>/<source id>).

Remote's service agents read every client already (their role reaches the branch's clients),
so an agent's ticket needs no grant.
"""

from __future__ import annotations

from datetime import datetime

from branch.vip.v1 import events_pb2 as vip_events
from sqlalchemy import Select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.clock import Clock
from services.common.consumer import Subscription
from services.common.db import Database
from services.common.events import Event
from services.common.ids import new_id
from services.common.models import AuditRecord
from services.directory.models import AssignmentGrant

ADVISORY = "vip.advisory"
ADVISORY_SUBJECTS = ["branch.vip.advisory.opened", "branch.vip.advisory.escalated",
                     "branch.vip.advisory.answered", "branch.vip.advisory.closed"]


def open_grant_clients(staff_id: str) -> Select[str]:
    """Ids of the clients a staff member has open assignment grants for (a subquery)."""
    return select(AssignmentGrant.client_id).where(
        AssignmentGrant.staff_id == staff_id, col(AssignmentGrant.ended_at).is_(None))


async def open_grant(session: AsyncSession, staff_id: str,
                     client_id: str) -> AssignmentGrant | None:
    return (await session.exec(select(AssignmentGrant).where(
        AssignmentGrant.staff_id == staff_id, AssignmentGrant.client_id == client_id,
        col(AssignmentGrant.ended_at).is_(None)).order_by(col(AssignmentGrant.granted_at))
    )).first()


async def audit_read(db: Database, clock: Clock, principal: Principal,
                     grant: AssignmentGrant) -> None:
    """One audit record per read through a grant, written before the answer is returned."""
    async with db.transaction() as session:
        session.add(AuditRecord(
            id=new_id(), staff_id=principal.staff_id, method="GetClient",
            resource=f"client/{grant.client_id} via {grant.source}/{grant.source_id}"[:200],
            request_id="", time=clock.now(), outcome="OK"))


async def _grant(session: AsyncSession, source_id: str, staff_id: str, client_id: str,
                 when: datetime) -> None:
    if not (source_id and staff_id and client_id):
        return
    row = await session.get(AssignmentGrant, (ADVISORY, source_id, staff_id))
    if row is None:
        session.add(AssignmentGrant(source=ADVISORY, source_id=source_id, staff_id=staff_id,
                                    client_id=client_id, granted_at=when))


async def _end(session: AsyncSession, source_id: str, when: datetime) -> None:
    rows = (await session.exec(select(AssignmentGrant).where(
        AssignmentGrant.source == ADVISORY, AssignmentGrant.source_id == source_id,
        col(AssignmentGrant.ended_at).is_(None)))).all()
    for row in rows:
        row.ended_at = when
        session.add(row)


async def on_advisory(session: AsyncSession, event: Event) -> None:
    kind = event.type.rsplit(".", 1)[-1]
    if kind == "opened":
        opened = event.parse(vip_events.AdvisoryOpened)
        await _grant(session, opened.advisory_id, opened.broker_id, opened.client_id,
                     event.time)
    elif kind == "escalated":
        up = event.parse(vip_events.AdvisoryEscalated)
        await _grant(session, up.advisory_id, up.escalated_to_id, up.client_id, event.time)
    elif kind == "answered":
        await _end(session, event.parse(vip_events.AdvisoryAnswered).advisory_id, event.time)
    elif kind == "closed":
        await _end(session, event.parse(vip_events.AdvisoryClosed).advisory_id, event.time)


def subscriptions() -> list[Subscription]:
    # one consumer for the advisory's whole life, so an end never overtakes its start
    return [Subscription("assignments", ADVISORY_SUBJECTS, on_advisory)]

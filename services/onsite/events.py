"""How the on-site service reacts to the directory, and its overdue timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from branch.directory.v1 import client_pb2
from branch.directory.v1 import events_pb2 as directory_events
from branch.onsite.v1 import consultation_pb2, day_pb2
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.consumer import Subscription
from services.common.events import Event
from services.common.logs import get_logger
from services.common.upsert import upsert
from services.onsite.consultation import check_overdue
from services.onsite.convert import OPEN_STATES
from services.onsite.core import Onsite
from services.onsite.meetings import release_registrations
from services.onsite.models import ClientStateRow, FormRow, PlanItemRow, PlanRow

CLIENT_SUBJECTS = ("branch.directory.client.updated", "branch.directory.client.tier_changed")
OVERDUE_CHECK_SECONDS = 10.0

log = get_logger("onsite", component="events")


def client_handler(o: Onsite) -> Callable[[AsyncSession, Event], Awaitable[None]]:
    async def handle(s: AsyncSession, event: Event) -> None:
        if event.type == "branch.directory.client.tier_changed":
            client = event.parse(directory_events.ClientTierChanged).client
        else:
            updated = event.parse(directory_events.ClientUpdated)
            client = updated.client
            if "client_manager_id" in updated.changed_fields:
                await reassign(s, o, client)
        await apply_client(s, o, client)

    return handle


async def apply_client(s: AsyncSession, o: Onsite, client: client_pb2.Client) -> None:
    """Remember the client's channel and status; a client who is no longer on-site and active
    leaves today's and later plans, and their open forms are flagged."""
    now = o.now()
    await remember_client(s, client, now)
    if client.status == client_pb2.CLIENT_STATUS_CLOSED:
        drop, flag = day_pb2.DROP_REASON_CLIENT_CLOSED, consultation_pb2.FORM_FLAG_CLIENT_CLOSED
    elif client.channel == client_pb2.CHANNEL_REMOTE:
        drop, flag = day_pb2.DROP_REASON_CLIENT_REMOTE, consultation_pb2.FORM_FLAG_CLIENT_REMOTE
    else:
        return
    dropped = await s.exec(
        update(PlanItemRow)
        .where(col(PlanItemRow.client_id) == client.id, col(PlanItemRow.plan_date) >= o.today(),
               col(PlanItemRow.dropped) == 0)
        .values(dropped=drop, dropped_at=now)
    )
    # CLOSED outranks REMOTE: a remote client who then leaves gets the stronger flag.
    flagged = await s.exec(
        update(FormRow)
        .where(col(FormRow.client_id) == client.id, col(FormRow.state).in_(OPEN_STATES),
               col(FormRow.client_flag) < flag)
        .values(client_flag=flag, client_flagged_at=now, updated_at=now)
    )
    released = 0
    if client.status == client_pb2.CLIENT_STATUS_CLOSED:
        released = await release_registrations(s, o, client.id)
    log.info("client left on-site service", client_id=client.id,
             plan_items=dropped.rowcount, forms_flagged=flagged.rowcount,
             registrations_released=released)


async def remember_client(s: AsyncSession, client: client_pb2.Client, now: datetime) -> None:
    """Insert or update the client's row in one statement. A find-then-insert lost to another
    replica inserting the same client at once: the consumer takes an IntegrityError for "a
    replica applied this event already", so the whole event (plans, flags) was dropped."""
    await upsert(s, ClientStateRow,
                 {"client_id": client.id, "channel": client.channel, "status": client.status,
                  "client_manager_id": client.client_manager_id, "updated_at": now},
                 key=["client_id"])


async def reassign(s: AsyncSession, o: Onsite, client: client_pb2.Client) -> None:
    """A client given to another manager leaves the other managers' plans from today on."""
    plans = select(PlanRow.id).where(PlanRow.client_manager_id != client.client_manager_id,
                                     col(PlanRow.plan_date) >= o.today())
    await s.exec(
        update(PlanItemRow)
        .where(col(PlanItemRow.client_id) == client.id, col(PlanItemRow.plan_id).in_(plans),
               col(PlanItemRow.dropped) == 0)
        .values(dropped=day_pb2.DROP_REASON_REASSIGNED, dropped_at=o.now())
    )


def subscriptions(o: Onsite) -> list[Subscription]:
    return [Subscription("directory-clients", CLIENT_SUBJECTS, client_handler(o))]


def overdue_timer(
    o: Onsite, stop: asyncio.Event, interval: float = OVERDUE_CHECK_SECONDS
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while not stop.is_set():
            try:
                await check_overdue(o)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("overdue check failed; will retry", error=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    return run

"""What remote reacts to: the directory's client and staff events, the VIP service's
advisories. Handlers run inside the transaction that records the event id."""

from __future__ import annotations

from branch.directory.v1 import client_pb2
from branch.directory.v1 import events_pb2 as directory_events
from branch.vip.v1 import events_pb2 as vip_events
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.consumer import Subscription
from services.common.events import Event
from services.common.logs import get_logger
from services.remote.campaigns import add_new_account, leaves_general, remove_targets
from services.remote.core import Core, remember_client
from services.remote.models import Agent, RemoteClient
from services.remote.tickets import Tickets

log = get_logger("remote", component="events")

CLIENT_SUBJECTS = [
    "branch.directory.client.created",
    "branch.directory.client.updated",
    "branch.directory.client.tier_changed",
    "branch.directory.staff.deactivated",
]
VIP_SUBJECTS = ["branch.vip.advisory.opened"]


def subscriptions(core: Core, tickets: Tickets) -> list[Subscription]:
    async def on_directory(session: AsyncSession, event: Event) -> None:
        now = core.now()
        if event.type == "branch.directory.staff.deactivated":
            staff = event.parse(directory_events.StaffDeactivated).staff
            agent = await session.get(Agent, staff.id)
            if agent is not None:
                agent.active = False
                agent.on_duty = False
                agent.updated_at = now
                session.add(agent)
            return
        if event.type == "branch.directory.client.created":
            client = event.parse(directory_events.ClientCreated).client
        elif event.type == "branch.directory.client.tier_changed":
            client = event.parse(directory_events.ClientTierChanged).client
        else:
            client = event.parse(directory_events.ClientUpdated).client
        if not client.id:
            return
        await remember_client(session, client, now)
        await session.flush()
        if event.type == "branch.directory.client.created":
            added = await add_new_account(session, core, client)
            if added:
                log.info("new account queued for callback", client_id=client.id)
            return
        if client.status == client_pb2.CLIENT_STATUS_CLOSED:
            removed = await remove_targets(session, client.id, "account closed", now,
                                           general_only=False)
        else:
            reason = leaves_general(await session.get(RemoteClient, client.id))
            removed = (await remove_targets(session, client.id, reason, now, general_only=True)
                       if reason else 0)
        if removed:
            log.info("client left campaigns", client_id=client.id, targets=removed)

    async def on_vip(session: AsyncSession, event: Event) -> None:
        opened = event.parse(vip_events.AdvisoryOpened)
        if opened.source_ticket_id and opened.advisory_id:
            await tickets.link_advisory(session, opened.source_ticket_id, opened.advisory_id,
                                        core.now())

    return [
        Subscription("directory-clients", CLIENT_SUBJECTS, on_directory),
        Subscription("vip-advisories", VIP_SUBJECTS, on_vip),
    ]

"""Wiring: the remote service as a ServiceSpec."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from branch.remote.v1 import remote_service_pb2, remote_service_pb2_grpc

from services.common import names
from services.common.calendar_sync import directory_loader
from services.common.logs import get_logger
from services.common.server import ServiceContext, ServiceSpec, Task
from services.remote import campaigns, events
from services.remote.access import ACCESS
from services.remote.api import RemoteServicer
from services.remote.campaigns import Campaigns
from services.remote.core import Core, DirectoryPeer
from services.remote.models import PersonName
from services.remote.reports import Reports
from services.remote.stats import Statistics
from services.remote.tickets import Tickets, seed_defaults

SERVICE_NAME = remote_service_pb2.DESCRIPTOR.services_by_name["RemoteService"].full_name
SLA_PASS_SECONDS = 15.0
# the quota check looks at past days only: every 20th pass (5 minutes) is plenty
QUOTA_EVERY_PASSES = 20
log = get_logger("remote", component="timer")


class Remote:
    def __init__(self, ctx: ServiceContext) -> None:
        self.core = Core(db=ctx.db, clock=ctx.clock, tz=ZoneInfo(ctx.settings.timezone),
                         directory=DirectoryPeer(ctx), calendar=ctx.calendar)
        self.campaigns = Campaigns(self.core)
        self.reports = Reports(self.core)
        self.tickets = Tickets(self.core)
        self.stats = Statistics(self.core)


def remote_of(ctx: ServiceContext) -> Remote:
    if "remote" not in ctx.extras:
        ctx.extras["remote"] = Remote(ctx)
    built: Remote = ctx.extras["remote"]
    return built


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    r = remote_of(ctx)
    remote_service_pb2_grpc.add_RemoteServiceServicer_to_server(
        names.with_names(RemoteServicer(r.campaigns, r.reports, r.tickets, r.stats),
                         ctx.db, PersonName), server)


async def on_start(ctx: ServiceContext) -> None:
    async with ctx.db.transaction() as session:
        await seed_defaults(session)


async def check_sla(ctx: ServiceContext) -> int:
    """One pass of the SLA timer (tests call it after moving the fake clock)."""
    return await remote_of(ctx).tickets.check_sla()


async def check_quotas(ctx: ServiceContext) -> int:
    """One pass of the daily callback-quota check."""
    return await campaigns.check_quotas(remote_of(ctx).core)


def background(ctx: ServiceContext, stop: asyncio.Event) -> list[Task]:
    async def sla_loop() -> None:
        passes = 0
        while not stop.is_set():
            try:
                await check_sla(ctx)
                if passes % QUOTA_EVERY_PASSES == 0:
                    await check_quotas(ctx)
            except Exception as exc:  # a bad pass must not end the timer
                log.warning("SLA pass failed", error=type(exc).__name__)
            passes += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=SLA_PASS_SECONDS)
            except TimeoutError:
                pass

    async def close_peers() -> None:
        try:
            await stop.wait()
        finally:
            remote_of(ctx).core.directory.close()

    return [sla_loop, close_peers]


SPEC = ServiceSpec(
    name="remote",
    grpc_services=[SERVICE_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    subscriptions=lambda ctx: [
        *events.subscriptions(remote_of(ctx).core, remote_of(ctx).tickets),
        names.subscription(PersonName, ctx.clock)],
    background=background,
    on_start=on_start,
    calendar_loader=lambda ctx: directory_loader(lambda: ctx.channel("directory")),
)

"""Wiring: the on-site service as a ServiceSpec."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from branch.onsite.v1 import onsite_service_pb2, onsite_service_pb2_grpc

from services.common import names
from services.common.calendar_sync import directory_loader
from services.common.server import ServiceContext, ServiceSpec
from services.onsite import events
from services.onsite.access import ACCESS
from services.onsite.api import OnsiteServicer
from services.onsite.consultation import check_overdue as _check_overdue
from services.onsite.core import Onsite
from services.onsite.directory_link import DirectoryLink
from services.onsite.models import PersonName
from services.onsite.research_link import ResearchLink

SERVICE_NAME = onsite_service_pb2.DESCRIPTOR.services_by_name["OnsiteService"].full_name


def onsite_of(ctx: ServiceContext) -> Onsite:
    if "onsite" not in ctx.extras:
        ctx.extras["onsite"] = Onsite(
            db=ctx.db, clock=ctx.clock, tz=ZoneInfo(ctx.settings.timezone),
            directory=DirectoryLink(lambda: ctx.channel("directory"),
                                    names.Keeper(ctx.db, PersonName, ctx.clock)),
            research=ResearchLink(lambda: ctx.channel("research")),
            calendar=ctx.calendar,
        )
    built: Onsite = ctx.extras["onsite"]
    return built


async def check_overdue(ctx: ServiceContext) -> int:
    """One pass of the overdue timer (tests call it after moving the FakeClock)."""
    return await _check_overdue(onsite_of(ctx))


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    onsite_service_pb2_grpc.add_OnsiteServiceServicer_to_server(
        names.with_names(OnsiteServicer(onsite_of(ctx)), ctx.db, PersonName), server
    )


SPEC = ServiceSpec(
    name="onsite",
    grpc_services=[SERVICE_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    subscriptions=lambda ctx: [*events.subscriptions(onsite_of(ctx)),
                               names.subscription(PersonName, ctx.clock)],
    background=lambda ctx, stop: [events.overdue_timer(onsite_of(ctx), stop)],
    calendar_loader=lambda ctx: directory_loader(lambda: ctx.channel("directory")),
)

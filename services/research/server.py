"""Wiring: research as a ServiceSpec."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from branch.research.v1 import research_service_pb2, research_service_pb2_grpc

from services.common import names
from services.common.consumer import Subscription
from services.common.server import ServiceContext, ServiceSpec
from services.research import events
from services.research import requests as request_rules
from services.research.access import ACCESS
from services.research.api import ResearchServicer
from services.research.models import PersonName
from services.research.service import Research

SERVICE_NAME = research_service_pb2.DESCRIPTOR.services_by_name["ResearchService"].full_name


def research_of(ctx: ServiceContext) -> Research:
    if "research" not in ctx.extras:
        ctx.extras["research"] = Research.build(ctx.db, ctx.clock, ctx.settings.timezone)
    built: Research = ctx.extras["research"]
    return built


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    research_service_pb2_grpc.add_ResearchServiceServicer_to_server(
        names.with_names(ResearchServicer(research_of(ctx)), ctx.db, PersonName), server
    )


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    return [*events.subscriptions(research_of(ctx).requests, ctx.clock),
            names.subscription(PersonName, ctx.clock)]


def background(ctx: ServiceContext, stop: asyncio.Event) -> list:  # type: ignore[type-arg]
    async def overdue() -> None:
        await request_rules.overdue_loop(ctx.db, ctx.clock, stop)

    return [overdue]


async def check_overdue(ctx: ServiceContext) -> int:
    """The overdue timer's single pass, for tests and operators."""
    return await request_rules.check_overdue(ctx.db, ctx.clock)


SPEC = ServiceSpec(
    name="research",
    grpc_services=[SERVICE_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    subscriptions=subscriptions,
    background=background,
)

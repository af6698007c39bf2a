"""Wiring: vip as a ServiceSpec, with its consumers and SLA timers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from branch.vip.v1 import vip_service_pb2, vip_service_pb2_grpc

from services.common import names
from services.common.logs import get_logger
from services.common.server import ServiceContext, ServiceSpec
from services.vip import advisory, events, relay
from services.vip.access import ACCESS
from services.vip.api import VipServicer
from services.vip.config import load_config
from services.vip.core import Vip
from services.vip.models import PersonName

SERVICE_NAME = vip_service_pb2.DESCRIPTOR.services_by_name["VipService"].full_name
log = get_logger("vip", component="timer")


def vip_of(ctx: ServiceContext) -> Vip:
    if "vip" not in ctx.extras:
        vip = Vip(
            db=ctx.db, clock=ctx.clock, config=ctx.extras.get("vip_config") or load_config(),
            tz=ZoneInfo(ctx.settings.timezone),
            directory_channel=lambda: ctx.channel("directory"),
            names=names.Keeper(ctx.db, PersonName, ctx.clock),
        )

        def wake_planner(session) -> None:  # type: ignore[no-untyped-def]
            if session.info.get(relay.WAKE_PLANNER):
                vip.planner_wakeup.set()

        ctx.db.after_commit_hooks.append(wake_planner)
        ctx.extras["vip"] = vip
    built: Vip = ctx.extras["vip"]
    return built


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    vip_service_pb2_grpc.add_VipServiceServicer_to_server(
        names.with_names(VipServicer(vip_of(ctx)), ctx.db, PersonName), server)


async def check_advisory_sla(ctx: ServiceContext) -> int:
    """One pass of the advisory SLA timer (tests call it after moving the FakeClock)."""
    return await advisory.check_sla(vip_of(ctx))


async def check_relays_overdue(ctx: ServiceContext) -> int:
    return await relay.check_overdue(vip_of(ctx))


async def plan_pending_relays(ctx: ServiceContext) -> int:
    """One pass of the relay planner (tests call it directly; the loop runs it on wake-up)."""
    return await relay.plan_pending(vip_of(ctx))


# How often the planner looks for pending plans without a wake-up (one recorded by another
# replica, or one waiting for the directory).
PLANNER_POLL_SECONDS = 5.0


def background(ctx: ServiceContext, stop: asyncio.Event):  # type: ignore[no-untyped-def]
    async def sla_loop() -> None:
        interval = vip_of(ctx).config.check_seconds
        while not stop.is_set():
            try:
                await check_advisory_sla(ctx)
                await check_relays_overdue(ctx)
            except Exception:
                log.error("SLA pass failed; next pass retries", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def planner_loop() -> None:
        vip = vip_of(ctx)
        interval = min(vip.config.check_seconds, PLANNER_POLL_SECONDS)
        while not stop.is_set():
            vip.planner_wakeup.clear()
            try:
                await plan_pending_relays(ctx)
            except Exception:
                log.error("relay planning pass failed; next pass retries", exc_info=True)
            woken = asyncio.ensure_future(vip.planner_wakeup.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({woken, stopped}, timeout=interval,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                stopped.cancel()

    return [sla_loop, planner_loop]


SPEC = ServiceSpec(
    name="vip",
    grpc_services=[SERVICE_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    subscriptions=lambda ctx: [*events.subscriptions(vip_of(ctx)),
                               names.subscription(PersonName, ctx.clock)],
    background=background,
)

"""Wiring: insight as a ServiceSpec. Timers: the monthly sample (last month's, drawn once per
person across replicas) and the scheduled reports (each (kind, period) stored once)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
from branch.insight.v1 import insight_service_pb2, insight_service_pb2_grpc

from services.common import names
from services.common.calendar_sync import directory_loader
from services.common.consumer import Subscription
from services.common.db import is_unavailable
from services.common.logs import get_logger
from services.common.server import ServiceContext, ServiceSpec
from services.insight import events, rebuild
from services.insight.access import ACCESS
from services.insight.api import InsightServicer
from services.insight.models import PersonName
from services.insight.service import Insight

SERVICE_NAME = insight_service_pb2.DESCRIPTOR.services_by_name["InsightService"].full_name
TIMER_SECONDS = 60.0
log = get_logger("insight", component="timer")


def insight_of(ctx: ServiceContext) -> Insight:
    if "insight" not in ctx.extras:
        ctx.extras["insight"] = Insight.build(ctx.db, ctx.clock, ctx.settings.timezone,
                                              ctx.calendar, ctx.nats)
    built: Insight = ctx.extras["insight"]
    return built


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    insight_service_pb2_grpc.add_InsightServiceServicer_to_server(
        names.with_names(InsightServicer(insight_of(ctx)), ctx.db, PersonName), server)


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    return [*events.subscriptions(insight_of(ctx).read_model),
            names.subscription(PersonName, ctx.clock)]


async def draw_samples(ctx: ServiceContext) -> int:
    """The sampling timer's single pass: last month's samples not drawn yet."""
    return await insight_of(ctx).inspections.draw_due()


async def generate_reports(ctx: ServiceContext) -> int:
    """The report timer's single pass: due reports not stored yet; returns how many this
    replica made. Skipped while the read model lags behind the stream (after a start, a
    rebuild or an outage), so a stored report is not cut from half the events."""
    behind = await rebuild.lag(ctx.db, ctx.nats)
    if behind:
        log.info("reports wait for the read model", pending_events=behind)
        return 0
    return await insight_of(ctx).reports.generate_due()


def background(ctx: ServiceContext, stop: asyncio.Event) -> list:  # type: ignore[type-arg]
    async def timer() -> None:
        # the first pass waits one period, so the read model catches up after a start
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TIMER_SECONDS)
            if stop.is_set():
                return
            for name, step in (("samples", draw_samples), ("reports", generate_reports)):
                try:
                    await step(ctx)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not is_unavailable(exc):
                        log.error("timer pass failed", step=name, error=type(exc).__name__,
                                  exc_info=True)

    return [timer]


async def on_start(ctx: ServiceContext) -> None:
    await insight_of(ctx).scorecards.ensure_default()


SPEC = ServiceSpec(
    name="insight",
    grpc_services=[SERVICE_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    subscriptions=subscriptions,
    background=background,
    on_start=on_start,
    calendar_loader=lambda ctx: directory_loader(lambda: ctx.channel("directory")),
)

"""The per-person size of the scheduled monthly sample is a branch setting (篇5 服务台: 1 to 5
per person, configurable, drawn once even with several replicas): set over gRPC, used by the
timer's draw in two replicas racing on one database, refused out of range."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import inspection_pb2
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub
from branch.vip.v1 import events_pb2 as vip_events

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.insight import server as insight_server
from services.insight.server import SPEC
from tests.harness import auth, bad_fields, channel, eventually, make_settings, running
from tests.insight.month import Published, build_month, interactions, publish_all, stamp

INSPECTOR = auth("qi-1", "quality_inspector")
# 1 March 2026, 00:05 in Shanghai: February is over in branch time
NOW = datetime(2026, 2, 28, 16, 5, tzinfo=UTC)


@pytest.fixture
async def replicas(tmp_path: Path, nats_url: str,
                   database_url: str) -> AsyncIterator[tuple[ServiceRunner, ServiceRunner]]:
    settings = make_settings(tmp_path, nats_url, database_url)
    clock = FakeClock(NOW)
    async with running(SPEC, settings, clock=clock) as one, \
            running(SPEC, settings, clock=clock) as two:
        yield one, two


def update(size: int) -> api.UpdateInspectionSettingsRequest:
    return api.UpdateInspectionSettingsRequest(
        settings=inspection_pb2.InspectionSettings(samples_per_person=size))


@pytest.mark.parametrize("size", [1, 5])
async def test_the_scheduled_draw_takes_the_configured_size(
        replicas: tuple[ServiceRunner, ServiceRunner], nats_url: str, size: int) -> None:
    one, two = replicas
    events = build_month(2026, 2)
    # a broker with only two answered advisories in the month
    for n, day in enumerate((3, 17)):
        when = datetime(2026, 2, day, 6, 0, tzinfo=UTC)
        events.append(Published("branch.vip.advisory.answered", vip_events.AdvisoryAnswered(
            advisory_id=f"sparse-{n}", client_id="vip-2", broker_id="broker-9",
            answer_time=stamp(when)), when, "broker-9"))
    await publish_all(nats_url, events)
    await eventually(lambda: sum(c.handled for r in replicas for c in r.consumers)
                     >= len(events), timeout=30)
    async with channel(one) as ch:
        stub = InsightServiceStub(ch)
        before = await stub.GetInspectionSettings(api.GetInspectionSettingsRequest(),
                                                  metadata=INSPECTOR)
        assert before.samples_per_person == 3 and not before.update_by
        got = await stub.UpdateInspectionSettings(update(size), metadata=INSPECTOR)
        assert (got.samples_per_person, got.update_by) == (size, "qi-1")
    pool = interactions(events, date(2026, 2, 1), date(2026, 2, 28))
    # some people had fewer interactions than 5: they get all of theirs
    assert len(pool["broker-9"]) == 2
    drawn = await asyncio.gather(insight_server.draw_samples(one.ctx),
                                 insight_server.draw_samples(two.ctx))
    assert sum(drawn) == sum(min(size, len(ids)) for ids in pool.values())
    assert await insight_server.draw_samples(two.ctx) == 0
    async with channel(two) as ch:
        listed = (await InsightServiceStub(ch).ListInspections(api.ListInspectionsRequest(
            month="2026-02", page_size=500), metadata=INSPECTOR)).inspections
    per_person = Counter(i.person_id for i in listed)
    assert per_person == {p: min(size, len(ids)) for p, ids in pool.items()}
    for i in listed:
        assert i.interaction_id in pool[i.person_id]


@pytest.mark.parametrize("size", [0, 6, -1])
async def test_a_bad_size_is_refused_and_changes_nothing(
        replicas: tuple[ServiceRunner, ServiceRunner], size: int) -> None:
    one, _ = replicas
    async with channel(one) as ch:
        stub = InsightServiceStub(ch)
        await stub.UpdateInspectionSettings(update(2), metadata=INSPECTOR)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateInspectionSettings(update(size), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == {"settings.samples_per_person"}
        got = await stub.GetInspectionSettings(api.GetInspectionSettingsRequest(),
                                               metadata=INSPECTOR)
        assert got.samples_per_person == 2


async def test_only_inspectors_and_supervisors_see_or_change_it(
        replicas: tuple[ServiceRunner, ServiceRunner]) -> None:
    one, _ = replicas
    async with channel(one) as ch:
        stub = InsightServiceStub(ch)
        for who in (auth("agent-1", "service_agent"), auth("br-1", "broker")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.UpdateInspectionSettings(update(4), metadata=who)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetInspectionSettings(api.GetInspectionSettingsRequest(),
                                                 metadata=who)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        got = await stub.UpdateInspectionSettings(update(4),
                                                  metadata=auth("sup-1", "supervisor"))
        assert got.samples_per_person == 4

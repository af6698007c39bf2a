"""Two replicas on one database: the overdue timer, shared event consumers, claim races."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import grpc
from branch.research.v1 import events_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub
from branch.vip.v1 import events_pb2 as vip_events

from services.common.clock import FakeClock
from services.common.protos import ts
from services.research.server import SPEC, check_overdue
from tests.harness import auth, channel, eventually, make_settings, running, unique
from tests.research.factories import (
    ANALYST,
    CONSULTANT,
    events_about,
    publish_event,
    research_request,
)


async def test_two_replicas(tmp_path: Path, nats_url: str, database_url: str) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings, clock=clock) as one, \
            running(SPEC, settings, clock=clock) as two, \
            channel(one) as ch1, channel(two) as ch2:
        s1, s2 = ResearchServiceStub(ch1), ResearchServiceStub(ch2)
        asked = []
        for hours in (1, 2, 3):
            asked.append(await s1.CreateResearchRequest(api.CreateResearchRequestRequest(
                research_request=research_request(
                    clock, due_time=ts(clock.now() + timedelta(hours=hours)))),
                metadata=CONSULTANT))
        later = await s2.CreateResearchRequest(api.CreateResearchRequestRequest(
            research_request=research_request(clock, due_time=ts(clock.now() + timedelta(days=2)))),
            metadata=CONSULTANT)
        answered = asked[2]
        await s2.AnswerResearchRequest(api.AnswerResearchRequestRequest(
            id=answered.id, answer="Done."), metadata=ANALYST)
        assert await check_overdue(one.ctx) == 0  # nothing is due yet
        clock.advance(timedelta(hours=4))
        raised = await asyncio.gather(check_overdue(one.ctx), check_overdue(two.ctx))
        assert sum(raised) == 2  # the two unanswered, each by exactly one replica
        assert await check_overdue(one.ctx) + await check_overdue(two.ctx) == 0
        for r in asked[:2]:
            msgs = await events_about(nats_url, "branch.research.request.overdue", r.id)
            assert len(msgs) == 1
            evt = events_pb2.RequestOverdue()
            evt.ParseFromString(msgs[0].data)
            assert evt.request_id == r.id and evt.asker_id == "con-1"
            assert evt.due_time == r.due_time
        got = await s2.GetResearchRequest(api.GetResearchRequestRequest(id=later.id),
                                          metadata=ANALYST)
        assert not got.overdue

        # claims through both replicas at once: one winner
        target = asked[0]
        results = await asyncio.gather(*(
            stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=target.id),
                                      metadata=auth(f"ana-r{i}", "analyst"))
            for i, stub in enumerate([s1, s2, s1, s2])), return_exceptions=True)
        assert len([r for r in results if not isinstance(r, Exception)]) == 1
        assert all(isinstance(r, grpc.aio.AioRpcError)
                   and r.code() == grpc.StatusCode.FAILED_PRECONDITION
                   for r in results if isinstance(r, BaseException))

        # the replicas share one durable consumer: an event is applied once
        advisory = unique("adv-")
        msg = vip_events.AdvisoryResearchRequested(
            advisory_id=advisory, client_id="cli-2", asker_id="brk-r", question="Why?",
            due_time=ts(clock.now() + timedelta(hours=1)))
        eid = await publish_event(nats_url, "branch.vip.advisory.research_requested", msg)
        await publish_event(nats_url, "branch.vip.advisory.research_requested", msg,
                            event_id=eid, msg_id=eid + "-redelivered")

        async def queued() -> list[research_request_pb2.ResearchRequest]:
            out = await s1.ListResearchRequests(api.ListResearchRequestsRequest(
                asker_id="brk-r", page_size=1000), metadata=ANALYST)
            return [r for r in out.research_requests if r.advisory_id == advisory]

        await eventually(queued)
        consumers = [c for r in (one, two) for c in r.consumers
                     if c.sub.name == "advisory-requests"]
        await eventually(lambda: sum(c.handled for c in consumers) >= 1)
        await asyncio.sleep(0.5)
        assert len(await queued()) == 1


async def test_release_racing_answer_never_reopens_an_answer(tmp_path: Path, nats_url: str,
                                                             database_url: str) -> None:
    """An analyst answers on one replica while releasing on the other: the request ends
    answered every time, never back in the queue with an answer on it."""
    clock = FakeClock()
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings, clock=clock) as one, \
            running(SPEC, settings, clock=clock) as two, \
            channel(one) as ch1, channel(two) as ch2:
        s1, s2 = ResearchServiceStub(ch1), ResearchServiceStub(ch2)
        for _ in range(12):
            r = await s1.CreateResearchRequest(api.CreateResearchRequestRequest(
                research_request=research_request(clock)), metadata=CONSULTANT)
            await s1.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=r.id),
                                          metadata=ANALYST)
            results = await asyncio.gather(
                s1.AnswerResearchRequest(api.AnswerResearchRequestRequest(
                    id=r.id, answer="Covered."), metadata=ANALYST),
                s2.ReleaseResearchRequest(api.ReleaseResearchRequestRequest(id=r.id),
                                          metadata=ANALYST),
                return_exceptions=True)
            for x in results:
                assert not isinstance(x, BaseException) or (
                    isinstance(x, grpc.aio.AioRpcError)
                    and x.code() == grpc.StatusCode.FAILED_PRECONDITION), x
            got = await s1.GetResearchRequest(api.GetResearchRequestRequest(id=r.id),
                                              metadata=ANALYST)
            assert got.state == research_request_pb2.RESEARCH_REQUEST_STATE_ANSWERED, got
            assert got.answer == "Covered." and got.answered_by == "ana-1"

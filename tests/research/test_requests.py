"""Research requests: by RPC and from VIP advisory events on a real NATS server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from branch.research.v1 import events_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api
from branch.vip.v1 import events_pb2 as vip_events

from services.common.clock import FakeClock
from services.common.protos import ts
from services.common.server import ServiceRunner
from tests.harness import Metadata, bad_fields, eventually, unique
from tests.harness import auth as _auth
from tests.research.factories import (
    ANALYST,
    ANALYST2,
    BROKER,
    CONSULTANT,
    SUPER,
    Raw,
    create,
    events_about,
    is_parked,
    publish_event,
    published,
    research_request,
)

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

R = research_request_pb2


async def ask(stub: ResearchServiceAsyncStub, clock: FakeClock, meta: Metadata = CONSULTANT,
              request_id: str = "", **kw: Any) -> R.ResearchRequest:
    return await stub.CreateResearchRequest(api.CreateResearchRequestRequest(
        research_request=research_request(clock, **kw), request_id=request_id), metadata=meta)


async def test_create_by_rpc_and_idempotent(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    r = await ask(stub, clock, request_id="q-1", tickers=["600519", "600519", "000001"])
    assert r.state == R.RESEARCH_REQUEST_STATE_OPEN
    assert r.source == R.RESEARCH_REQUEST_SOURCE_STAFF
    assert r.asker_id == "con-1" and r.client_id == "cli-1"
    assert list(r.tickers) == ["600519", "000001"] and not r.overdue
    again = await ask(stub, clock, request_id="q-1")
    assert again.id == r.id


async def test_create_bad_fields_and_roles(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(stub, clock, question=" ", tickers=["bad ticker"],
                  due_time=ts(clock.now() - timedelta(minutes=1)), client_id="x" * 40)
    assert bad_fields(err.value) == {
        "research_request.question", "research_request.tickers[0]",
        "research_request.due_time", "research_request.client_id",
    }
    bad = research_request(clock)
    bad.ClearField("due_time")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateResearchRequest(api.CreateResearchRequestRequest(research_request=bad),
                                         metadata=CONSULTANT)
    assert bad_fields(err.value) == {"research_request.due_time"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(stub, clock, due_time=ts(clock.now() + timedelta(days=91)))
    assert bad_fields(err.value) == {"research_request.due_time"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(stub, clock, meta=ANALYST)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateResearchRequest(api.CreateResearchRequestRequest(
            research_request=research_request(clock)))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_queue_claim_answer(stub: ResearchServiceAsyncStub, clock: FakeClock, nats_url: str) -> None:
    late = await ask(stub, clock, due_time=ts(clock.now() + timedelta(hours=9)))
    soon = await ask(stub, clock, meta=BROKER, due_time=ts(clock.now() + timedelta(hours=1)))
    mid = await ask(stub, clock, due_time=ts(clock.now() + timedelta(hours=3)))
    mine = {late.id, soon.id, mid.id}
    queue = await stub.ListResearchRequests(api.ListResearchRequestsRequest(), metadata=ANALYST)
    assert [r.id for r in queue.research_requests if r.id in mine] == [soon.id, mid.id, late.id]
    page = await stub.ListResearchRequests(api.ListResearchRequestsRequest(
        asker_id="con-1", page_size=1), metadata=ANALYST)
    page2 = await stub.ListResearchRequests(api.ListResearchRequestsRequest(
        asker_id="con-1", page_size=1, page_token=page.next_page_token), metadata=ANALYST)
    assert [r.id for r in [*page.research_requests, *page2.research_requests]] == [mid.id, late.id]
    # askers see their own only
    own = await stub.ListResearchRequests(api.ListResearchRequestsRequest(), metadata=BROKER)
    assert [r.id for r in own.research_requests] == [soon.id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetResearchRequest(api.GetResearchRequestRequest(id=late.id), metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListResearchRequests(api.ListResearchRequestsRequest(asker_id="con-1"),
                                        metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # claim: one analyst wins, a second claim by the winner is harmless
    claimed = await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=soon.id),
                                              metadata=ANALYST)
    assert claimed.state == R.RESEARCH_REQUEST_STATE_CLAIMED and claimed.claimed_by == "ana-1"
    await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=soon.id), metadata=ANALYST)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=soon.id),
                                        metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
            id=soon.id, answer="x"), metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id="nope"),
                                        metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # answer: text or a published note
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(id=soon.id),
                                         metadata=ANALYST)
    assert bad_fields(err.value) == {"answer"}
    draft = await create(stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
            id=soon.id, note_id=draft.id), metadata=ANALYST)
    assert bad_fields(err.value) == {"note_id"}
    note = await published(stub)
    answered = await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
        id=soon.id, answer="Yes: payout covered 1.8x.", note_id=note.id), metadata=ANALYST)
    assert answered.state == R.RESEARCH_REQUEST_STATE_ANSWERED
    assert answered.answered_by == "ana-1" and answered.answer_note_id == note.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
            id=soon.id, answer="again"), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = await stub.GetResearchRequest(api.GetResearchRequestRequest(id=soon.id),
                                        metadata=BROKER)
    assert got.answer == "Yes: payout covered 1.8x."
    # answering an open request claims it on the way
    direct = await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
        id=mid.id, answer="No change to our view."), metadata=ANALYST2)
    assert direct.claimed_by == "ana-2"
    answered_list = await stub.ListResearchRequests(api.ListResearchRequestsRequest(
        state=R.RESEARCH_REQUEST_STATE_ANSWERED, asker_id="con-1"), metadata=SUPER)
    assert [r.id for r in answered_list.research_requests] == [mid.id]
    msgs = await events_about(nats_url, "branch.research.request.answered", soon.id)
    evt = events_pb2.RequestAnswered()
    evt.ParseFromString(msgs[0].data)
    assert (evt.request_id, evt.asker_id, evt.client_id, evt.note_id, evt.analyst_id) == (
        soon.id, "brk-1", "cli-1", note.id, "ana-1")
    assert evt.answer == "Yes: payout covered 1.8x." and evt.answer_time == answered.answer_time
    assert (evt.note_revision, evt.note_risk_level) == (note.published_revision, note.risk_level)


async def test_release_and_overdue(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    r = await ask(stub, clock, due_time=ts(clock.now() + timedelta(hours=1)))
    await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=r.id), metadata=ANALYST)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReleaseResearchRequest(api.ReleaseResearchRequestRequest(id=r.id),
                                          metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    released = await stub.ReleaseResearchRequest(api.ReleaseResearchRequestRequest(id=r.id),
                                                 metadata=ANALYST)
    assert released.state == R.RESEARCH_REQUEST_STATE_OPEN and not released.claimed_by
    with pytest.raises(grpc.aio.AioRpcError) as err:  # not claimed any more
        await stub.ReleaseResearchRequest(api.ReleaseResearchRequestRequest(id=r.id),
                                          metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # a supervisor frees a claim an absent analyst left behind
    await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=r.id), metadata=ANALYST2)
    freed = await stub.ReleaseResearchRequest(api.ReleaseResearchRequestRequest(id=r.id),
                                              metadata=SUPER)
    assert freed.state == R.RESEARCH_REQUEST_STATE_OPEN and not freed.claimed_by
    clock.advance(timedelta(hours=2))
    got = await stub.GetResearchRequest(api.GetResearchRequestRequest(id=r.id), metadata=ANALYST)
    assert got.overdue


async def test_claim_race_has_one_winner(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    r = await ask(stub, clock)
    analysts = [_auth(f"ana-race-{i}", "analyst") for i in range(6)]
    results = await asyncio.gather(
        *(stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=r.id), metadata=m)
          for m in analysts), return_exceptions=True)
    winners = [x for x in results if not isinstance(x, Exception)]
    assert len(winners) == 1
    assert all(isinstance(x, grpc.aio.AioRpcError) and x.code() == grpc.StatusCode.FAILED_PRECONDITION
               for x in results if isinstance(x, BaseException))


async def test_advisory_event_queues_a_request_once(stub: ResearchServiceAsyncStub, research: ServiceRunner, nats_url: str, clock: FakeClock) -> None:
    advisory = unique("adv-")
    msg = vip_events.AdvisoryResearchRequested(
        advisory_id=advisory, client_id="cli-9", asker_id="brk-7",
        tickers=["600519", "bad one"], question="Exposure to the new consumption tax?",
        due_time=ts(clock.now() + timedelta(hours=2)),
    )
    subject = "branch.vip.advisory.research_requested"
    event_id = await publish_event(nats_url, subject, msg, source="/branch/vip")
    # the same event delivered again (another Nats-Msg-Id, the same ce-id), and a second
    # event for the same advisory: still one request
    await publish_event(nats_url, subject, msg, event_id=event_id, msg_id=unique("dup-"))
    await publish_event(nats_url, subject, msg, source="/branch/vip")

    async def queued() -> list[R.ResearchRequest]:
        out = await stub.ListResearchRequests(
            api.ListResearchRequestsRequest(asker_id="brk-7", page_size=1000), metadata=ANALYST)
        return [r for r in out.research_requests if r.advisory_id == advisory]

    found = await eventually(queued)
    consumer = next(c for c in research.consumers if c.sub.name == "advisory-requests")
    await eventually(lambda: consumer.handled + consumer.redelivered >= 2 or None, timeout=10)
    await asyncio.sleep(0.3)
    found = await queued()
    assert len(found) == 1
    r = found[0]
    assert r.source == R.RESEARCH_REQUEST_SOURCE_VIP_ADVISORY
    assert (r.client_id, r.asker_id, list(r.tickers)) == ("cli-9", "brk-7", ["600519"])
    assert r.question == msg.question and r.due_time == msg.due_time
    answered = await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
        id=r.id, answer="Limited: under 2% of revenue."), metadata=ANALYST)
    msgs = await events_about(nats_url, "branch.research.request.answered", answered.id)
    evt = events_pb2.RequestAnswered()
    evt.ParseFromString(msgs[0].data)
    assert evt.advisory_id == advisory and evt.asker_id == "brk-7" and evt.client_id == "cli-9"


async def test_unusable_advisory_event_is_parked(research: ServiceRunner, nats_url: str) -> None:
    bad = vip_events.AdvisoryResearchRequested(advisory_id=unique("adv-"), question="")
    event_id = await publish_event(nats_url, "branch.vip.advisory.research_requested", bad)
    garbage = await publish_event(nats_url, "branch.vip.advisory.research_requested",
                                  Raw(b"\xff\xff\xff"))
    for eid in (event_id, garbage):
        assert await eventually(
            lambda eid=eid: is_parked(nats_url, "branch.parked.research.advisory-requests", eid),
            timeout=15)


async def test_staff_only_note_cannot_answer_a_clients_question(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    """The answer goes to the client through the broker: a staff-only note must not."""
    from branch.research.v1 import note_enums_pb2

    internal = await published(stub, audience=note_enums_pb2.AUDIENCE_STAFF_ONLY)
    for_client = await ask(stub, clock)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
            id=for_client.id, answer="See the note.", note_id=internal.id), metadata=ANALYST)
    assert bad_fields(err.value) == {"note_id"}
    still = await stub.GetResearchRequest(api.GetResearchRequestRequest(id=for_client.id),
                                          metadata=ANALYST)
    assert still.state == R.RESEARCH_REQUEST_STATE_OPEN and not still.claimed_by
    # a general question (no client) may be answered with it
    general = await ask(stub, clock, client_id="")
    done = await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
        id=general.id, note_id=internal.id), metadata=ANALYST)
    assert done.state == R.RESEARCH_REQUEST_STATE_ANSWERED

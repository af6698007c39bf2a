from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.remote.v1 import events_pb2 as remote_events
from branch.research.v1 import events_pb2 as research_events
from branch.vip.v1 import advisory_pb2, events_pb2, roster_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.clock import FakeClock
from services.vip.server import check_advisory_sla
from tests.harness import (
    SUPERVISOR,
    Metadata,
    auth,
    bad_fields,
    collect_events,
    eventually,
    make_settings,
)
from tests.vip.support import ROLE, START, Branch, branch, broker, publish, running_vip

A = advisory_pb2


async def setup_client(b: Branch, *, backup: bool = True, **kw: Any) -> tuple[str, str, str]:
    br = await b.staff(ROLE.ROLE_BROKER)
    bk = await b.staff(ROLE.ROLE_BROKER)
    client_id = await b.key_client(br, **kw)
    if backup:
        await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
            entry=roster_pb2.RosterEntry(client_id=client_id, backup_broker_id=bk),
            update_mask=FieldMask(paths=["backup_broker_id"])), metadata=SUPERVISOR)
    return br, bk, client_id


async def ask(b: Branch, client_id: str, who: Metadata, **kw: Any) -> A.Advisory:
    return await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=A.Advisory(
        client_id=client_id, question=kw.pop("question", "Hold 600519 through earnings?"),
        tickers=kw.pop("tickers", ["600519"]), **kw)), metadata=who)


async def test_assignment_dedicated_on_shift_else_on_call(b: Branch) -> None:
    br, _, client_id = await setup_client(b)
    on_call = await b.staff(ROLE.ROLE_BROKER)
    now = b.clock.now()
    await b.shift(on_call, now - timedelta(hours=1), now + timedelta(hours=7))
    adv = await ask(b, client_id, broker(br))
    assert adv.assignee_id == on_call and adv.dedicated_broker_id == br
    assert adv.state == A.ADVISORY_STATE_OPEN
    assert adv.acknowledge_due_time.ToDatetime() == (now + timedelta(minutes=5)).replace(
        tzinfo=None)
    assert adv.answer_due_time.ToDatetime() == (now + timedelta(minutes=60)).replace(tzinfo=None)
    await b.shift(br, now - timedelta(hours=1), now + timedelta(hours=7))
    adv2 = await ask(b, client_id, broker(br), urgency=A.URGENCY_HIGH)
    assert adv2.assignee_id == br
    assert adv2.answer_due_time.ToDatetime() == (now + timedelta(minutes=30)).replace(
        tzinfo=None)
    events = await collect_events(b.nats_url, "branch.vip.advisory.opened", count=2)
    opened = [m for m in events]
    assert len(opened) == 2


async def test_full_lifecycle_with_research_round_trip(b: Branch) -> None:
    br, _, client_id = await setup_client(b)
    analyst = await b.staff(ROLE.ROLE_ANALYST)
    now = b.clock.now()
    await b.shift(analyst, now - timedelta(hours=1), now + timedelta(hours=8),
                  role=rota_pb2.SHIFT_ROLE_ANALYST)
    adv = await ask(b, client_id, broker(br))
    adv = await b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv.id),
                                          metadata=broker(br))
    assert adv.state == A.ADVISORY_STATE_ACKNOWLEDGED
    again = await b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv.id),
                                            metadata=broker(br))
    assert again.acknowledge_time == adv.acknowledge_time
    adv = await b.vip.RequestAdvisoryResearch(api.RequestAdvisoryResearchRequest(
        id=adv.id, question="Earnings risk for 600519?"), metadata=broker(br))
    assert adv.state == A.ADVISORY_STATE_AWAITING_RESEARCH and adv.research_requested
    events = await collect_events(b.nats_url, "branch.vip.advisory.research_requested", count=1)
    req = events_pb2.AdvisoryResearchRequested()
    req.ParseFromString(events[0].data)
    assert (req.advisory_id, req.client_id, req.asker_id) == (adv.id, client_id, br)
    assert list(req.tickers) == ["600519"] and req.question == "Earnings risk for 600519?"
    assert req.urgency == "NORMAL" and req.on_call_analyst_id == analyst
    inbox = await b.inbox(br)
    assert inbox.items[0].next_action == "wait for research"
    await publish(b.nats_url, "branch.research.request.answered", research_events.RequestAnswered(
        request_id="rr-1", asker_id=br, client_id=client_id, advisory_id=adv.id,
        answer="Hold; earnings in line.", analyst_id="an-1"))

    async def answered() -> advisory_pb2.Advisory | None:
        got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=broker(br))
        return got if got.research_answer else None

    got = await eventually(answered)
    assert got.state == A.ADVISORY_STATE_ACKNOWLEDGED
    inbox = await b.inbox(br)
    assert inbox.items[0].advisory.research_answer == "Hold; earnings in line."
    assert inbox.items[0].next_action == "answer (research answer in)"
    done = await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
        id=adv.id, advice="Hold, review after results.", risk_level=client_pb2.RISK_LEVEL_R2),
        metadata=broker(br))
    assert done.state == A.ADVISORY_STATE_ANSWERED and not done.suitability_overridden
    assert done.advice_risk_level == client_pb2.RISK_LEVEL_R2
    assert (await b.inbox(br)).advisory_count == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
            id=adv.id, advice="again", risk_level=client_pb2.RiskLevel.ValueType(1)), metadata=broker(br))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_advice_obeys_suitability(b: Branch) -> None:
    br, _, client_id = await setup_client(b, tolerance=client_pb2.RISK_TOLERANCE_C2)
    adv = await ask(b, client_id, broker(br))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
            id=adv.id, advice="Add on margin.", risk_level=client_pb2.RISK_LEVEL_R4),
            metadata=broker(br))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "above the client's tolerance" in (err.value.details() or "")
    done = await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
        id=adv.id, advice="Add on margin.", risk_level=client_pb2.RISK_LEVEL_R4,
        override_reason="client insisted; recorded call"), metadata=broker(br))
    assert done.suitability_overridden and done.override_reason.startswith("client insisted")
    events = await collect_events(b.nats_url, "branch.vip.advisory.answered", count=1)
    msg = events_pb2.AdvisoryAnswered()
    msg.ParseFromString(events[0].data)
    assert msg.suitability_overridden
    # an expired assessment refuses even low-risk advice
    br2, _, old = await setup_client(b, assessed_on="2023-01-05")
    adv = await ask(b, old, broker(br2))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
            id=adv.id, advice="Hold.", risk_level=client_pb2.RISK_LEVEL_R1), metadata=broker(br2))
    assert "expired" in (err.value.details() or "")


async def test_bad_fields_scope_and_idempotency(b: Branch) -> None:
    br, bk, client_id = await setup_client(b)
    stranger = await b.staff(ROLE.ROLE_BROKER)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=A.Advisory(
            urgency=advisory_pb2.Urgency.ValueType(7), tickers=["X" * 20], source=A.ADVISORY_SOURCE_TICKET)),
            metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"advisory.client_id", "advisory.question",
                                     "advisory.tickers", "advisory.urgency", "advisory.source"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(b, client_id, broker(stranger))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(b, "not-a-key-client", SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    req = api.CreateAdvisoryRequest(advisory=A.Advisory(client_id=client_id, question="Q?"),
                                    request_id="adv-1")
    first = await b.vip.CreateAdvisory(req, metadata=broker(br))
    second = await b.vip.CreateAdvisory(req, metadata=broker(br))
    assert first.id == second.id
    listed = await b.vip.ListAdvisories(api.ListAdvisoriesRequest(client_id=client_id),
                                        metadata=SUPERVISOR)
    assert len(listed.advisories) == 1
    # a hotline agent opens one on the client's behalf
    hot = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=A.Advisory(
        client_id=client_id, question="Called the hotline")), metadata=auth("sa-1",
                                                                           "service_agent"))
    assert hot.source == A.ADVISORY_SOURCE_HOTLINE
    # another broker neither sees nor works it
    for call in (b.vip.GetAdvisory(api.GetAdvisoryRequest(id=first.id), metadata=broker(stranger)),
                 b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=first.id),
                                           metadata=broker(stranger))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert list((await b.vip.ListAdvisories(api.ListAdvisoriesRequest(),
                                            metadata=broker(stranger))).advisories) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.ListAdvisories(api.ListAdvisoriesRequest(broker_id=br),
                                   metadata=broker(stranger))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.GetInbox(api.GetInboxRequest(broker_id=br), metadata=broker(stranger))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(id=first.id, risk_level=client_pb2.RiskLevel.ValueType(9)),
                                   metadata=broker(br))
    assert bad_fields(err.value) == {"advice", "risk_level"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CloseAdvisory(api.CloseAdvisoryRequest(id=first.id), metadata=broker(br))
    assert bad_fields(err.value) == {"reason"}
    closed = await b.vip.CloseAdvisory(api.CloseAdvisoryRequest(
        id=first.id, reason="client withdrew the question"), metadata=broker(br))
    assert closed.state == A.ADVISORY_STATE_CLOSED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.GetAdvisory(api.GetAdvisoryRequest(id="nope"), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_escalation_chain_with_fake_clock(b: Branch) -> None:
    br, bk, client_id = await setup_client(b)
    sup = await b.staff(ROLE.ROLE_SUPERVISOR)
    now = b.clock.now()
    await b.shift(sup, now - timedelta(hours=1), now + timedelta(hours=8),
                  role=rota_pb2.SHIFT_ROLE_SUPERVISOR)
    adv = await ask(b, client_id, broker(br))
    ctx = b.runners["vip"].ctx
    assert await check_advisory_sla(ctx) == 0
    b.clock.advance(minutes=5, seconds=1)
    assert await check_advisory_sla(ctx) == 2  # acknowledge breach + step 1 (backup broker)
    assert await check_advisory_sla(ctx) == 0
    got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
    assert got.acknowledge_breached and got.escalation_level == 1 and got.escalated_to_id == bk
    # the backup sees it in their inbox and may work it
    inbox = await b.inbox(bk)
    assert [i.advisory.id for i in inbox.items] == [adv.id] and inbox.items[0].overdue
    await b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv.id),
                                    metadata=broker(bk))
    b.clock.advance(minutes=55)
    assert await check_advisory_sla(ctx) == 2  # answer breach + step 2 (on-call supervisor)
    got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
    assert got.answer_breached and got.escalation_level == 2 and got.escalated_to_id == sup
    b.clock.advance(hours=2)
    assert await check_advisory_sla(ctx) == 0
    breaches = await b.vip.ListBreaches(api.ListBreachesRequest(), metadata=SUPERVISOR)
    assert {x.kind for x in breaches.breaches} == {api.BREACH_KIND_ADVISORY_ACKNOWLEDGE,
                                                   api.BREACH_KIND_ADVISORY_ANSWER}
    assert all(x.escalation_level == 2 and x.broker_id == br for x in breaches.breaches)
    events = await collect_events(b.nats_url, "branch.vip.advisory.escalated", count=3,
                                  timeout=1)
    levels = []
    for m in events:
        e = events_pb2.AdvisoryEscalated()
        e.ParseFromString(m.data)
        levels.append((e.level, e.escalated_to_id))
    assert levels == [(1, bk), (2, sup)]
    overdue = await collect_events(b.nats_url, "branch.vip.advisory.overdue", count=3, timeout=1)
    assert len(overdue) == 2


async def test_answer_on_time_breach_escalates_step_by_step(b: Branch) -> None:
    br, bk, client_id = await setup_client(b, backup=False)
    other = await b.staff(ROLE.ROLE_BROKER)
    now = b.clock.now()
    await b.shift(br, now - timedelta(hours=1), now + timedelta(hours=8))
    await b.shift(other, now - timedelta(hours=1), now + timedelta(hours=8))
    adv = await ask(b, client_id, broker(br))
    await b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv.id),
                                    metadata=broker(br))
    ctx = b.runners["vip"].ctx
    b.clock.advance(minutes=61)
    assert await check_advisory_sla(ctx) == 2  # answer breach, step 1
    got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
    # no backup named: the other broker on call takes step 1
    assert got.escalation_level == 1 and got.escalated_to_id == other
    b.clock.advance(minutes=5)
    assert await check_advisory_sla(ctx) == 1  # step 2: no supervisor on call, still raised
    got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
    assert got.escalation_level == 2 and got.escalated_to_id == ""


@pytest.mark.parametrize("replicas", [2])
async def test_escalation_raised_once_with_two_replicas(tmp_path: Path, database_url: str,
                                                        replicas: int) -> None:
    clock = FakeClock(START)
    async with branch(tmp_path, clock=clock, database_url=database_url) as b:
        br, bk, client_id = await setup_client(b)
        advisories = [await ask(b, client_id, broker(br)) for _ in range(5)]
        d = b.runners["directory"]
        settings = make_settings(tmp_path, b.nats_url, database_url,
                                 directory_addr=f"127.0.0.1:{d.port}")
        async with running_vip(settings, clock=clock, run_consumers=False) as second:
            b.clock.advance(minutes=61)
            ctxs = [b.runners["vip"].ctx, second.ctx]
            results = await asyncio.gather(*(check_advisory_sla(c) for c in ctxs for _ in
                                              range(2)))
            # per advisory: acknowledge and answer breaches and step 1 once; step 2 later
            assert sum(results) == 3 * len(advisories)
            b.clock.advance(minutes=6)
            results = await asyncio.gather(*(check_advisory_sla(c) for c in ctxs))
            assert sum(results) == len(advisories)
            assert sum(await asyncio.gather(*(check_advisory_sla(c) for c in ctxs))) == 0
        breaches = await b.vip.ListBreaches(api.ListBreachesRequest(page_size=100),
                                            metadata=SUPERVISOR)
        assert len(breaches.breaches) == 2 * len(advisories)
        events = await collect_events(b.nats_url, "branch.vip.advisory.escalated",
                                      count=2 * len(advisories) + 1, timeout=3)
        assert len(events) == 2 * len(advisories)
        assert {a.id for a in advisories} == {m.headers["ce-subject"] for m in events}


async def test_ticket_from_key_client_opens_linked_advisory_once(b: Branch) -> None:
    br, _, client_id = await setup_client(b)
    std = await b.client(broker_id=br, tier=client_pb2.TIER_STANDARD)
    ticket = remote_events.TicketOpened(ticket_id="T-1", line="investment", client_id=client_id,
                                        client_tier=client_pb2.TIER_KEY, priority="high",
                                        summary="Worried about 600519 drop", owner_id="sa-1")
    event_id = await publish(b.nats_url, "branch.remote.ticket.opened", ticket)
    # the same event redelivered, and the same ticket re-published under a new event id
    await publish(b.nats_url, "branch.remote.ticket.opened", ticket, event_id=event_id,
                  msg_id="redelivery-1")
    await publish(b.nats_url, "branch.remote.ticket.opened", ticket)
    await publish(b.nats_url, "branch.remote.ticket.opened", remote_events.TicketOpened(
        ticket_id="T-2", client_id=std, client_tier=client_pb2.TIER_STANDARD, summary="x"))
    events = await collect_events(b.nats_url, "branch.vip.advisory.opened", count=2, timeout=2)
    assert len(events) == 1
    opened = events_pb2.AdvisoryOpened()
    opened.ParseFromString(events[0].data)
    assert opened.source_ticket_id == "T-1" and opened.client_id == client_id
    listed = await b.vip.ListAdvisories(api.ListAdvisoriesRequest(source_ticket_id="T-1"),
                                        metadata=SUPERVISOR)
    assert len(listed.advisories) == 1
    adv = listed.advisories[0]
    assert adv.source == A.ADVISORY_SOURCE_TICKET and adv.urgency == A.URGENCY_HIGH
    assert adv.assignee_id == br


async def test_background_loop_raises_breaches_with_configured_slas(tmp_path: Path) -> None:
    from services.vip.config import VipConfig

    config = VipConfig(check_seconds=0.05, ack_minutes_normal=1, answer_minutes_normal=10)
    async with branch(tmp_path, vip_config=config) as b:
        br, bk, client_id = await setup_client(b)
        adv = await ask(b, client_id, broker(br))
        assert adv.acknowledge_due_time.ToDatetime() == (
            START + timedelta(minutes=1)).replace(tzinfo=None)
        b.clock.advance(minutes=2)

        async def escalated() -> advisory_pb2.Advisory | None:
            got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id),
                                          metadata=SUPERVISOR)
            return got if got.escalation_level == 1 else None

        got = await eventually(escalated)
        assert got.acknowledge_breached and got.escalated_to_id == bk

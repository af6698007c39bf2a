from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import nats
import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import events_pb2
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import ticket_pb2 as tpb
from branch.vip.v1 import events_pb2 as vip_events
from sqlmodel import select

from services.common.events import Event
from services.common.protos import ts
from services.remote.models import TicketEscalation
from services.remote.server import SPEC as REMOTE
from services.remote.server import check_sla
from tests.harness import (
    SUPERVISOR,
    Metadata,
    auth,
    bad_fields,
    collect_events,
    eventually,
    running,
)
from tests.remote.conftest import Env

INVEST, TECH = tpb.LINE_INVESTMENT, tpb.LINE_TECHNICAL


def ticket(**kw: Any) -> tpb.Ticket:
    base: dict[str, Any] = dict(line=INVEST, caller_name="Caller", caller_phone="13900000000",
                category="market", summary="asks about a stock", priority=tpb.PRIORITY_URGENT)
    base.update(kw)
    return tpb.Ticket(**base)


async def on_duty(env: Env, lines: Iterable[tpb.Line.ValueType] = (INVEST,),
                  team_lead_id: str = "") -> tuple[str, Metadata]:
    sid, md = await env.agent(team_lead_id)
    await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id=sid, lines=list(lines),
                                                        on_duty=True), metadata=md)
    return sid, md


async def open_ticket(env: Env, md: Metadata, **kw: Any) -> tpb.Ticket:
    return await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(**kw)), metadata=md)


async def test_open_owns_and_key_client_event(env: Env, nats_url: str) -> None:
    owner, md = await on_duty(env)
    key = await env.client(tier=client_pb2.TIER_KEY)
    req = api.OpenTicketRequest(ticket=ticket(client_id=key.id, complaint=True),
                                request_id="t-1")
    made = await env.stub.OpenTicket(req, metadata=md)
    assert made.owner_id == owner and made.state == tpb.TICKET_STATE_OPEN
    assert made.client_tier == client_pb2.TIER_KEY and made.complaint
    assert (await env.stub.OpenTicket(req, metadata=md)).id == made.id
    assert made.first_response.target_minutes == 15 and made.resolution.target_minutes == 240
    assert made.first_response.due_time.ToDatetime(UTC) == env.clock.now().replace(
        tzinfo=None).replace(tzinfo=UTC) + timedelta(minutes=15)
    msgs = await collect_events(nats_url, "branch.remote.ticket.opened", count=500, timeout=2)
    mine = [m for m in msgs if m.headers["ce-subject"] == made.id]
    assert len(mine) == 1
    opened = events_pb2.TicketOpened()
    opened.ParseFromString(mine[0].data)
    assert opened.client_tier == client_pb2.TIER_KEY and opened.line == "investment"
    assert opened.owner_id == owner and opened.priority == "urgent"
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=SUPERVISOR)
    assert [a.kind for a in got.activities] == ["opened"]


async def test_open_bad_fields_roles_scope(env: Env) -> None:
    _, md = await on_duty(env)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=tpb.Ticket(
            line=tpb.Line.ValueType(0), priority=tpb.Priority.ValueType(7), summary="", caller_phone="abc", category="x" * 61)),
            metadata=md)
    assert bad_fields(err.value) == {"ticket.line", "ticket.priority", "ticket.summary",
                                     "ticket.caller_phone", "ticket.category"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(caller_phone="")),
                                  metadata=md)
    assert bad_fields(err.value) == {"ticket.caller_phone"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket()), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"ticket.owner_id"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(client_id="nobody")),
                                  metadata=md)
    assert bad_fields(err.value) == {"ticket.client_id"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket()),
                                  metadata=auth("b", "broker"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket()))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    made = await open_ticket(env, md)
    _, stranger = await env.agent()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="hi"),
                                     metadata=stranger)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetTicket(api.GetTicketRequest(id="none"), metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for call, fields in (
        (env.stub.RespondTicket(api.RespondTicketRequest(id=made.id), metadata=md), {"note"}),
        (env.stub.PauseTicket(api.PauseTicketRequest(id=made.id), metadata=md), {"reason"}),
        (env.stub.TransferTicket(api.TransferTicketRequest(id=made.id), metadata=md),
         {"department"}),
        (env.stub.ResolveTicket(api.ResolveTicketRequest(id=made.id), metadata=md),
         {"resolution_note"}),
        (env.stub.ReopenTicket(api.ReopenTicketRequest(id=made.id), metadata=md), {"reason"}),
        (env.stub.RecordFollowUp(api.RecordFollowUpRequest(
            id=made.id, outcome=cpb.CALLBACK_OUTCOME_REACHED), metadata=md), {"satisfaction"}),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == fields


async def test_round_robin_skips_off_duty_absent_and_deactivated(env: Env) -> None:
    a, _ = await on_duty(env)
    b, _ = await on_duty(env)
    c, c_md = await on_duty(env)
    d, _ = await on_duty(env, lines=(TECH,))
    off, off_md = await env.agent()
    await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id=off, lines=[INVEST],
                                                        on_duty=False), metadata=off_md)
    gone, _ = await on_duty(env)
    await env.dir.DeactivateStaff(dapi.DeactivateStaffRequest(id=gone), metadata=SUPERVISOR
                                  if False else auth("admin-1", "admin"))

    async def inactive() -> bool:
        agents = await env.stub.ListAgents(api.ListAgentsRequest(), metadata=SUPERVISOR)
        return any(x.staff_id == gone and not x.active for x in agents.agents)

    await eventually(inactive)
    owners = []
    for _ in range(6):
        t = await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(), auto_assign=True),
                                      metadata=SUPERVISOR)
        owners.append(t.owner_id)
    ring = sorted([a, b, c])
    assert set(owners) == set(ring)
    assert owners[:3] == owners[3:]  # fair: each once per round
    # an absent agent is skipped too, and their tickets show the substitute
    mine = [o for o in owners if o == c]
    await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(staff_id=c, absent=True,
                                                              substitute_id=a), metadata=c_md)
    more = [(await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(), auto_assign=True),
                                       metadata=SUPERVISOR)).owner_id for _ in range(4)]
    assert c not in more and d not in more
    listed = await env.stub.ListTickets(api.ListTicketsRequest(staff_id=a, page_size=100),
                                        metadata=SUPERVISOR)
    covered = [t for t in listed.tickets if t.owner_id == c]
    assert len(covered) == len(mine) and all(t.substitute_id == a for t in covered)
    # the substitute works it; the owner stays
    worked = await env.stub.RespondTicket(api.RespondTicketRequest(
        id=covered[0].id, note="on it"), metadata=auth(a, "service_agent"))
    assert worked.owner_id == c and worked.substitute_id == a
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(staff_id=c, absent=True),
                                       metadata=c_md)
    assert bad_fields(err.value) == {"substitute_id"}
    back = await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(staff_id=c, absent=False),
                                          metadata=c_md)
    assert not back.absent
    got = await env.stub.GetTicket(api.GetTicketRequest(id=covered[0].id), metadata=SUPERVISOR)
    assert got.substitute_id == ""
    _, stranger = await env.agent()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id=a, lines=[INVEST],
                                                            on_duty=False), metadata=stranger)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_no_agent_on_duty(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(line=TECH),
                                                        auto_assign=True), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_sla_warning_and_escalation_with_fake_clock(env: Env, nats_url: str) -> None:
    lead = await env.staff(staff_pb2.ROLE_SUPERVISOR)
    owner, md = await on_duty(env, team_lead_id=lead)
    made = await open_ticket(env, md)  # urgent: 15 min response, 4 h resolution
    env.clock.advance(minutes=11)
    assert await check_sla(env.remote.ctx) == 0
    env.clock.advance(seconds=16)  # 11:16 > 75% of 15 min
    assert await check_sla(env.remote.ctx) == 1
    assert await check_sla(env.remote.ctx) == 0
    env.clock.advance(minutes=4)  # 15:16: breached, level 1 (owner)
    assert await check_sla(env.remote.ctx) == 1
    env.clock.advance(minutes=8)  # due + 7.5 min: level 2 (team lead)
    assert await check_sla(env.remote.ctx) == 1
    env.clock.advance(minutes=60)  # level 3 (supervisor), and nothing more ever
    assert await check_sla(env.remote.ctx) == 1
    env.clock.advance(minutes=60)
    assert await check_sla(env.remote.ctx) == 0
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert got.escalation_level == 3 and got.first_response.breached
    assert got.first_response.warned and not got.resolution.warned
    kinds = [a.kind for a in got.activities]
    assert kinds.count("escalated") == 3 and kinds.count("warned") == 1
    msgs = await collect_events(nats_url, "branch.remote.ticket.escalated", count=500,
                                timeout=2)
    levels = {}
    for m in msgs:
        if m.headers["ce-subject"] == made.id:
            e = events_pb2.TicketEscalated()
            e.ParseFromString(m.data)
            levels[e.level] = e.recipient_id
    assert levels == {1: owner, 2: lead, 3: ""}
    breached = await env.stub.ListTickets(api.ListTicketsRequest(breached_only=True),
                                          metadata=SUPERVISOR)
    assert [t.id for t in breached.tickets] == [made.id]
    # responding late keeps the breach on record
    late = await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="sorry"),
                                        metadata=md)
    assert late.first_response.met_time.seconds and late.first_response.breached


async def test_escalation_raised_once_with_two_replicas(env_db: Env) -> None:
    env = env_db
    _, md = await on_duty(env)
    made = [await open_ticket(env, md) for _ in range(3)]
    env.clock.advance(hours=2)
    async with running(REMOTE, env.settings, clock=env.clock, run_consumers=False) as second:
        counts = await asyncio.gather(*[check_sla(r.ctx) for r in (env.remote, second,
                                                                 env.remote, second)])
        # per ticket: 1 warning + 3 levels of first response, resolution still within 75%
        assert sum(counts) == 3 * 4
        async with env.remote.db.read() as session:
            rows = (await session.exec(select(TicketEscalation))).all()
    assert sorted((r.ticket_id, r.level) for r in rows) == sorted(
        (t.id, level) for t in made for level in (1, 2, 3))


async def test_pause_resume_keeps_reason_and_moves_deadlines(env: Env) -> None:
    _, md = await on_duty(env)
    made = await open_ticket(env, md)
    await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="looking"),
                                 metadata=md)
    env.clock.advance(minutes=30)
    paused = await env.stub.PauseTicket(api.PauseTicketRequest(
        id=made.id, reason=tpb.PAUSE_REASON_WAITING_THIRD_PARTY, note="exchange"), metadata=md)
    assert paused.state == tpb.TICKET_STATE_WAITING and paused.resolution.paused
    assert not paused.resolution.due_time.seconds
    assert paused.pause_reason == tpb.PAUSE_REASON_WAITING_THIRD_PARTY
    env.clock.advance(hours=5)  # far beyond 4 h, but the clock is stopped
    assert await check_sla(env.remote.ctx) == 0
    resumed = await env.stub.ResumeTicket(api.ResumeTicketRequest(id=made.id, note="answer"),
                                          metadata=md)
    assert resumed.state == tpb.TICKET_STATE_IN_PROGRESS
    assert resumed.resolution.paused_seconds == 5 * 3600
    due = resumed.resolution.due_time.ToDatetime(UTC)
    assert due == made.open_time.ToDatetime(UTC) + timedelta(hours=9)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ResumeTicket(api.ResumeTicketRequest(id=made.id), metadata=md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert any(a.kind == "paused" and "WAITING_THIRD_PARTY: exchange" in a.note
               for a in got.activities)


async def test_normal_priority_resolution_counts_business_days(env: Env) -> None:
    _, md = await on_duty(env)
    # Friday 6 March 2026, 17:00 in Shanghai
    env.clock.set(datetime(2026, 3, 6, 9, 0, tzinfo=UTC))
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    assert made.resolution.business_days
    assert made.resolution.due_time.ToDatetime(UTC) == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


async def test_transfer_resolve_follow_up_reopen(env: Env, nats_url: str) -> None:
    owner, md = await on_duty(env)
    handler, handler_md = await env.agent()
    made = await open_ticket(env, md, line=TECH)
    moved = await env.stub.TransferTicket(api.TransferTicketRequest(
        id=made.id, department="it", handler_id=handler, note="login fault"), metadata=md)
    assert moved.owner_id == owner and moved.handler_department == "it"
    assert moved.handler_id == handler
    # the handler works it, the owner still owns it
    resolved = await env.stub.ResolveTicket(api.ResolveTicketRequest(
        id=made.id, resolution_note="password reset"), metadata=handler_md)
    assert resolved.state == tpb.TICKET_STATE_RESOLVED and resolved.owner_id == owner
    assert resolved.first_response.met_time.seconds and resolved.resolution.met_time.seconds
    due = resolved.follow_up_due_time.ToDatetime(UTC)
    assert due == env.clock.now() + timedelta(days=1)
    env.clock.advance(days=1)
    due_list = await env.stub.ListTickets(api.ListTicketsRequest(follow_up_due_only=True),
                                          metadata=md)
    assert [t.id for t in due_list.tickets] == [made.id]
    miss = await env.stub.RecordFollowUp(api.RecordFollowUpRequest(
        id=made.id, outcome=cpb.CALLBACK_OUTCOME_NO_ANSWER), metadata=md)
    assert miss.state == tpb.TICKET_STATE_RESOLVED
    req = api.RecordFollowUpRequest(id=made.id, outcome=cpb.CALLBACK_OUTCOME_REACHED,
                                    satisfaction=4, notes="works now", request_id="f1")
    closed = await env.stub.RecordFollowUp(req, metadata=md)
    assert closed.state == tpb.TICKET_STATE_CLOSED and closed.satisfaction == 4
    assert (await env.stub.RecordFollowUp(req, metadata=md)).state == tpb.TICKET_STATE_CLOSED
    calls = await env.stub.ListCallbacks(api.ListCallbacksRequest(agent_id=owner), metadata=md)
    assert sorted(c.satisfaction for c in calls.callbacks) == [0, 4]
    assert all(c.ticket_id == made.id for c in calls.callbacks)
    env.clock.advance(hours=2)
    reopened = await env.stub.ReopenTicket(api.ReopenTicketRequest(
        id=made.id, reason="fault is back"), metadata=md)
    assert reopened.state == tpb.TICKET_STATE_IN_PROGRESS and reopened.reopen_count == 1
    assert reopened.resolution.paused_seconds >= 26 * 3600 - 60
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert [a.kind for a in got.activities] == [
        "opened", "transferred", "resolved", "follow_up", "follow_up", "closed", "reopened"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordFollowUp(api.RecordFollowUpRequest(
            id=made.id, outcome=cpb.CALLBACK_OUTCOME_REACHED, satisfaction=5), metadata=md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    msgs = await collect_events(nats_url, "branch.remote.ticket.transferred", count=500,
                                timeout=2)
    assert any(m.headers["ce-subject"] == made.id for m in msgs)


async def test_owner_reminded_while_another_department_works_it(env_db: Env) -> None:
    env = env_db
    _, md = await on_duty(env)
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="x"), metadata=md)
    await env.stub.TransferTicket(api.TransferTicketRequest(id=made.id, department="it"),
                                  metadata=md)
    env.clock.advance(hours=3, minutes=59)
    assert await check_sla(env.remote.ctx) == 0
    env.clock.advance(minutes=1)
    async with running(REMOTE, env.settings, clock=env.clock, run_consumers=False) as second:
        counts = await asyncio.gather(check_sla(env.remote.ctx), check_sla(second.ctx))
    assert sum(counts) == 1  # one reminder, even with two replicas
    env.clock.advance(hours=4)
    assert await check_sla(env.remote.ctx) == 1
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert [a.kind for a in got.activities].count("reminded") == 2


async def test_vip_advisory_links_ticket_once(env: Env, nats_url: str) -> None:
    _, md = await on_duty(env)
    key = await env.client(tier=client_pb2.TIER_KEY)
    made = await open_ticket(env, md, client_id=key.id)
    payload = vip_events.AdvisoryOpened(advisory_id="adv-1", client_id=key.id, broker_id="b1",
                                        source_ticket_id=made.id, open_time=ts(env.clock.now()))
    headers = {"Nats-Msg-Id": "vip-evt-1", "ce-specversion": "1.0", "ce-id": "vip-evt-1",
               "ce-type": "branch.vip.advisory.opened", "ce-source": "/branch/vip",
               "ce-time": "2026-03-02T01:31:00Z", "ce-subject": "adv-1"}
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish("branch.vip.advisory.opened", payload.SerializeToString(),
                                     headers=headers)
    finally:
        await nc.close()

    async def linked() -> str:
        t = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
        return t.vip_advisory_id

    assert await eventually(linked) == "adv-1"
    # a redelivery of the same event id is applied once
    consumer = next(c for c in env.remote.consumers if c.durable.endswith("vip-advisories"))
    event = Event.from_headers("branch.vip.advisory.opened", headers,
                               payload.SerializeToString(), deliveries=2)
    assert await consumer.apply(event) is False
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert [a.kind for a in got.activities].count("vip_linked") == 1


async def test_sla_policies(env: Env) -> None:
    policies = await env.stub.ListSlaPolicies(api.ListSlaPoliciesRequest(), metadata=SUPERVISOR)
    assert len(policies.policies) == 4
    normal = next(p for p in policies.policies if p.line == TECH
                  and p.priority == tpb.PRIORITY_NORMAL)
    assert (normal.first_response_minutes, normal.resolution_minutes,
            normal.resolution_business_days) == (15, 1440, True)
    changed = await env.stub.UpdateSlaPolicy(api.UpdateSlaPolicyRequest(policy=tpb.SlaPolicy(
        line=TECH, priority=tpb.PRIORITY_URGENT, first_response_minutes=5,
        resolution_minutes=60)), metadata=SUPERVISOR)
    assert changed.first_response_minutes == 5
    _, md = await on_duty(env, lines=(TECH,))
    made = await open_ticket(env, md, line=TECH)
    assert made.first_response.target_minutes == 5 and made.resolution.target_minutes == 60
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.UpdateSlaPolicy(api.UpdateSlaPolicyRequest(policy=tpb.SlaPolicy(
            line=tpb.Line.ValueType(0), priority=tpb.Priority.ValueType(0), first_response_minutes=0, resolution_minutes=0)),
            metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"policy.line", "policy.priority",
                                     "policy.first_response_minutes",
                                     "policy.resolution_minutes"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.UpdateSlaPolicy(api.UpdateSlaPolicyRequest(), metadata=md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_weekly_statistics(env: Env) -> None:
    owner, md = await on_duty(env)
    first = await open_ticket(env, md, complaint=True)
    await open_ticket(env, md)
    env.clock.advance(minutes=20)
    await check_sla(env.remote.ctx)  # first response breached on both: escalated
    await env.stub.ResolveTicket(api.ResolveTicketRequest(id=first.id, resolution_note="ok"),
                                 metadata=md)
    await env.stub.RecordFollowUp(api.RecordFollowUpRequest(
        id=first.id, outcome=cpb.CALLBACK_OUTCOME_REACHED, satisfaction=5), metadata=md)
    week = await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(
        week_of="2026-03-04"), metadata=SUPERVISOR)
    assert (week.week_start, week.week_end) == ("2026-03-02", "2026-03-08")
    row = next(a for a in week.agents if a.agent_id == owner)
    assert (row.tickets_accepted, row.tickets_escalated, row.tickets_resolved,
            row.resolved_within_sla, row.callbacks_made, row.callbacks_reached,
            row.complaints) == (2, 2, 1, 0, 1, 1, 1)
    assert row.average_satisfaction == 5.0 and week.total.tickets_accepted == 2
    own = await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(), metadata=md)
    assert [a.agent_id for a in own.agents] == [owner]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(agent_id="other"),
                                           metadata=md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(week_of="03/04"),
                                           metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"week_of"}
    empty = await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(
        week_of="2026-02-20"), metadata=SUPERVISOR)
    assert not empty.agents

"""Agents on the desk, listing filters, calls logged afterwards, retention."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import report_pb2
from branch.remote.v1 import ticket_pb2 as tpb

from services.common.protos import ts
from services.remote.server import check_sla
from tests.harness import SUPERVISOR, auth, bad_fields
from tests.remote.conftest import Env
from tests.remote.test_campaigns import campaign
from tests.remote.test_tickets import INVEST, TECH, on_duty, open_ticket, ticket


def test_no_rpc_deletes_records() -> None:
    methods = api.DESCRIPTOR.services_by_name["RemoteService"].methods_by_name
    assert not [m for m in methods if m.startswith(("Delete", "Remove", "Purge"))]


async def test_agent_duty_and_listing(env: Env) -> None:
    agent, md = await env.agent()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id="", lines=[tpb.Line.ValueType(7)],
                                                            on_duty=True), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"staff_id", "lines"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id="ghost", lines=[INVEST]),
                                    metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"staff_id"}
    made = await env.stub.SetAgentDuty(api.SetAgentDutyRequest(
        staff_id=agent, lines=[TECH, INVEST], on_duty=True), metadata=md)
    assert list(made.lines) == [INVEST, TECH] and made.on_duty and made.active
    other, _ = await env.agent()
    await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id=other, lines=[INVEST]),
                                metadata=SUPERVISOR)
    on = await env.stub.ListAgents(api.ListAgentsRequest(on_duty_only=True), metadata=md)
    assert [a.staff_id for a in on.agents] == [agent]
    tech = await env.stub.ListAgents(api.ListAgentsRequest(line=TECH), metadata=md)
    assert [a.staff_id for a in tech.agents] == [agent]
    page = await env.stub.ListAgents(api.ListAgentsRequest(page_size=1), metadata=md)
    rest = await env.stub.ListAgents(api.ListAgentsRequest(
        page_size=1, page_token=page.next_page_token), metadata=md)
    assert {page.agents[0].staff_id, rest.agents[0].staff_id} == {agent, other}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(
            staff_id="ghost", absent=True, substitute_id=agent), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(
            staff_id=agent, absent=True, substitute_id="ghost"), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"substitute_id"}


async def test_ticket_filters_and_pages(env: Env) -> None:
    owner, md = await on_duty(env, lines=(INVEST, TECH))
    client = await env.client()
    a = await open_ticket(env, md, complaint=True)
    b = await open_ticket(env, md, line=TECH, client_id=client.id)
    c = await open_ticket(env, md)
    await env.stub.RespondTicket(api.RespondTicketRequest(id=c.id, note="x"), metadata=md)

    async def ids(**kw: Any) -> list[str]:
        got = await env.stub.ListTickets(api.ListTicketsRequest(**kw), metadata=SUPERVISOR)
        return [t.id for t in got.tickets]

    assert await ids(complaint_only=True) == [a.id]
    assert await ids(line=TECH) == [b.id]
    assert await ids(client_id=client.id) == [b.id]
    assert await ids(state=tpb.TICKET_STATE_IN_PROGRESS) == [c.id]
    assert await ids(staff_id=owner) == [c.id, b.id, a.id]
    first = await env.stub.ListTickets(api.ListTicketsRequest(page_size=2), metadata=md)
    second = await env.stub.ListTickets(api.ListTicketsRequest(
        page_size=2, page_token=first.next_page_token), metadata=md)
    assert [t.id for t in first.tickets] + [t.id for t in second.tickets] == [c.id, b.id, a.id]
    assert not second.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ListTickets(api.ListTicketsRequest(page_token="bogus"), metadata=md)
    assert bad_fields(err.value) == {"page_token"}


async def test_call_logged_afterwards_runs_sla_from_then(env: Env) -> None:
    _, md = await on_duty(env)
    received = env.clock.now() - timedelta(minutes=20)
    made = await env.stub.OpenTicket(api.OpenTicketRequest(
        ticket=ticket(), received_time=ts(received)), metadata=md)
    assert made.open_time.ToDatetime(UTC) == received
    assert made.first_response.due_time.ToDatetime(UTC) == received + timedelta(minutes=15)
    assert await check_sla(env.remote.ctx) == 2  # the warning and level 1 at once
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(
            ticket=ticket(), received_time=ts(env.clock.now() + timedelta(minutes=1))),
            metadata=md)
    assert bad_fields(err.value) == {"received_time"}


async def test_callback_recorded_afterwards_keeps_both_times(env: Env) -> None:
    agent, md = await env.agent()
    client = await env.client()
    await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                  metadata=SUPERVISOR)
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED,
            call_time=ts(env.clock.now() - timedelta(days=31))), metadata=md)
    assert bad_fields(err.value) == {"call_time"}
    made_at = env.clock.now() - timedelta(hours=3)
    rec = await env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED, call_time=ts(made_at)),
        metadata=md)
    assert rec.call_time.ToDatetime(UTC) == made_at
    assert rec.record_time.ToDatetime(UTC) == env.clock.now()
    by_client = await env.stub.ListCallbacks(api.ListCallbacksRequest(client_id=client.id),
                                             metadata=SUPERVISOR)
    assert [c.id for c in by_client.callbacks] == [rec.id]
    audit = await env.stub.ListCallbacks(api.ListCallbacksRequest(),
                                         metadata=auth("c-1", "compliance"))
    assert [c.id for c in audit.callbacks] == [rec.id]


async def test_closed_campaign_hands_out_nothing(env: Env) -> None:
    agent, md = await env.agent()
    await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                         metadata=SUPERVISOR)
    await env.stub.CloseCampaign(api.CloseCampaignRequest(id=made.id), metadata=SUPERVISOR)
    assert not (await env.stub.NextCallback(api.NextCallbackRequest(), metadata=md)).target.id
    closed = await env.stub.ListCampaigns(api.ListCampaignsRequest(
        state=cpb.CAMPAIGN_STATE_CLOSED), metadata=SUPERVISOR)
    assert [c.id for c in closed.campaigns] == [made.id]


async def test_resolving_a_waiting_ticket_ends_the_pause(env: Env) -> None:
    _, md = await on_duty(env)
    made = await open_ticket(env, md)
    await env.stub.PauseTicket(api.PauseTicketRequest(
        id=made.id, reason=tpb.PAUSE_REASON_WAITING_CALLER), metadata=md)
    env.clock.advance(minutes=40)
    done = await env.stub.ResolveTicket(api.ResolveTicketRequest(
        id=made.id, resolution_note="caller confirmed"), metadata=md)
    assert done.state == tpb.TICKET_STATE_RESOLVED
    assert not done.first_response.breached and not done.resolution.breached
    assert done.resolution.paused_seconds == 40 * 60
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.PauseTicket(api.PauseTicketRequest(
            id=made.id, reason=tpb.PAUSE_REASON_WAITING_CALLER), metadata=md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    reports = await env.stub.ListReports(api.ListReportsRequest(
        state=report_pb2.REPORT_STATE_DELIVERED), metadata=md)
    assert not reports.reports

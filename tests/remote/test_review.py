"""Review findings: caller mistakes are INVALID_ARGUMENT, scopes are whole ids, agents read
their own tickets, and no RPC deletes the records kept for the regulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import staff_pb2
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import report_pb2 as rpb
from branch.remote.v1 import ticket_pb2 as tpb
from google.protobuf.timestamp_pb2 import Timestamp
from sqlmodel import col, select

from services.common.models import OutboxEvent
from tests.harness import ADMIN, SUPERVISOR, auth, bad_fields, eventually
from tests.remote.conftest import Env
from tests.remote.test_campaigns import campaign
from tests.remote.test_tickets import on_duty, open_ticket, ticket

OUT_OF_RANGE = Timestamp(seconds=10**15)


async def test_out_of_range_timestamps_are_invalid_argument(env: Env) -> None:
    _, md = await on_duty(env)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.RecordCallback(api.RecordCallbackRequest(
            target_id="t", outcome=cpb.CALLBACK_OUTCOME_CALL_BACK_LATER,
            callback_time=OUT_OF_RANGE, call_time=Timestamp(seconds=1, nanos=-1)),
            metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {"callback_time", "call_time"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(),
                                                        received_time=OUT_OF_RANGE),
                                  metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {"received_time"}
    listed = await env.stub.ListTickets(api.ListTicketsRequest(), metadata=SUPERVISOR)
    assert not listed.tickets  # nothing half-written


async def test_agent_lists_campaigns_that_name_them_in_full(env: Env) -> None:
    agent, md = await env.agent()
    await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(
        campaign=campaign([agent])), metadata=SUPERVISOR)
    mine = await env.stub.ListCampaigns(api.ListCampaignsRequest(), metadata=md)
    assert [c.id for c in mine.campaigns] == [made.id]
    # a staff id that is only part of the agent's id is another person
    for partial in (agent[:-1], agent[1:], agent[3:9]):
        other = await env.stub.ListCampaigns(api.ListCampaignsRequest(),
                                             metadata=auth(partial, "service_agent"))
        assert not other.campaigns
    wildcard = await env.stub.ListCampaigns(api.ListCampaignsRequest(),
                                            metadata=auth("%", "service_agent"))
    assert not wildcard.campaigns


async def test_agent_reads_only_tickets_they_work_on(env: Env) -> None:
    owner, md = await on_duty(env)
    other, other_md = await on_duty(env)
    made = await open_ticket(env, md, complaint=True)
    assert (await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)).id == made.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=other_md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await env.stub.ListTickets(api.ListTicketsRequest(), metadata=other_md)
    assert made.id not in [t.id for t in listed.tickets]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ListTickets(api.ListTicketsRequest(staff_id=owner), metadata=other_md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await env.stub.ListTickets(api.ListTicketsRequest(complaint_only=True),
                                        metadata=md)
    assert [t.id for t in listed.tickets] == [made.id]
    # compliance and supervisors read the branch
    for md_all in (auth("comp-1", "compliance"), SUPERVISOR):
        got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md_all)
        assert got.complaint
    # the agent it is handed to reads it; the owner still does
    await env.stub.TransferTicket(api.TransferTicketRequest(
        id=made.id, department="operations", handler_id=other), metadata=md)
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=other_md)
    assert got.owner_id == owner and got.handler_id == other
    listed = await env.stub.ListTickets(api.ListTicketsRequest(), metadata=other_md)
    assert [t.id for t in listed.tickets] == [made.id]


def test_no_rpc_deletes_callbacks_or_tickets() -> None:
    methods = api.DESCRIPTOR.services_by_name["RemoteService"].methods_by_name
    assert not [m for m in methods if m.startswith(("Delete", "Remove", "Purge", "Erase"))]
    # nothing rewrites a recorded call or a ticket's complaint flag
    assert not [m for m in methods if m.startswith("Update") and m != "UpdateSlaPolicy"]
    assert "complaint" not in {f.name for m in ("RespondTicket", "TransferTicket",
                                                 "ResolveTicket", "ReopenTicket")
                               for f in methods[m].input_type.fields}
    assert tpb.Ticket.DESCRIPTOR.fields_by_name["complaint"]


async def test_weekly_statistics_week_out_of_range(env: Env) -> None:
    for week_of in ("9999-12-31", "0001-01-01", "1999-12-31", "2030-01-01"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(week_of=week_of),
                                               metadata=SUPERVISOR)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, week_of
        assert bad_fields(err.value) == {"week_of"}
    got = await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(
        week_of="2000-01-03"), metadata=SUPERVISOR)
    assert got.week_start == "2000-01-03"


async def test_only_desk_staff_work_queues_and_lines(env: Env) -> None:
    broker = await env.staff(staff_pb2.ROLE_BROKER)
    await env.client()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([broker])),
                                      metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"campaign.agent_ids"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentDuty(api.SetAgentDutyRequest(
            staff_id=broker, lines=[tpb.LINE_INVESTMENT], on_duty=True), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"staff_id"}
    agents = await env.stub.ListAgents(api.ListAgentsRequest(), metadata=SUPERVISOR)
    assert broker not in [a.staff_id for a in agents.agents]
    lead = await env.staff(staff_pb2.ROLE_SUPERVISOR)
    on = await env.stub.SetAgentDuty(api.SetAgentDutyRequest(
        staff_id=lead, lines=[tpb.LINE_INVESTMENT], on_duty=True), metadata=SUPERVISOR)
    assert on.on_duty


async def _once_each(calls: Iterable[Awaitable[Any]]) -> list[grpc.StatusCode]:
    """Run the calls at once; the status codes, OK for those that succeeded."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    return sorted((r.code() if isinstance(r, grpc.aio.AioRpcError) else grpc.StatusCode.OK
                   for r in results), key=lambda c: c.name)


async def test_concurrent_transitions_happen_once(env_db: Env) -> None:
    """Two desks pressing the same button at once (two replicas, PostgreSQL read committed):
    one wins, the other is told the state moved on; one history entry, one event."""
    env = env_db
    _, md = await on_duty(env)
    made = await open_ticket(env, md)
    codes = await _once_each([env.stub.ResolveTicket(api.ResolveTicketRequest(
        id=made.id, resolution_note=f"fixed {i}"), metadata=md) for i in range(4)])
    assert codes == [grpc.StatusCode.FAILED_PRECONDITION] * 3 + [grpc.StatusCode.OK]
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert [a.kind for a in got.activities].count("resolved") == 1
    codes = await _once_each([env.stub.ReopenTicket(api.ReopenTicketRequest(
        id=made.id, reason="still broken"), metadata=md) for _ in range(4)])
    assert codes == [grpc.StatusCode.FAILED_PRECONDITION] * 3 + [grpc.StatusCode.OK]
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert got.reopen_count == 1

    client = await env.client()
    report = await env.stub.CreateReport(api.CreateReportRequest(
        client_id=client.id, period_start="2026-02-01", period_end="2026-02-28"), metadata=md)
    codes = await _once_each([env.stub.DeliverReport(api.DeliverReportRequest(
        id=report.id, channel=rpb.DELIVERY_CHANNEL_EMAIL, delivered_to=f"c{i}@example.com"),
        metadata=md) for i in range(4)])
    assert codes == [grpc.StatusCode.FAILED_PRECONDITION] * 3 + [grpc.StatusCode.OK]
    async with env.remote.ctx.db.read() as session:
        subjects = (await session.exec(select(OutboxEvent.subject).where(
            col(OutboxEvent.ce_subject).in_([made.id, report.id]),
            col(OutboxEvent.subject).in_(["branch.remote.report.delivered",
                                          "branch.remote.ticket.resolved",
                                          "branch.remote.ticket.reopened"])))).all()
    assert sorted(subjects) == ["branch.remote.report.delivered",
                                "branch.remote.ticket.reopened",
                                "branch.remote.ticket.resolved"]


async def test_concurrent_outcomes_for_one_call_record_once(env_db: Env) -> None:
    env = env_db
    agent, md = await env.agent()
    await env.client()
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign([agent])),
                                         metadata=SUPERVISOR)
    nxt = await env.stub.NextCallback(api.NextCallbackRequest(campaign_id=made.id), metadata=md)
    codes = await _once_each([env.stub.RecordCallback(api.RecordCallbackRequest(
        target_id=nxt.target.id, outcome=cpb.CALLBACK_OUTCOME_REACHED, notes=f"call {i}"),
        metadata=md) for i in range(4)])
    assert codes == [grpc.StatusCode.FAILED_PRECONDITION] * 3 + [grpc.StatusCode.OK]
    calls = await env.stub.ListCallbacks(api.ListCallbacksRequest(campaign_id=made.id),
                                         metadata=SUPERVISOR)
    assert len(calls.callbacks) == 1


async def test_substitute_must_be_present_and_active(env: Env) -> None:
    a, a_md = await on_duty(env)
    b, b_md = await on_duty(env)
    c, _ = await on_duty(env)
    await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(
        staff_id=b, absent=True, substitute_id=c), metadata=b_md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(
            staff_id=a, absent=True, substitute_id=b), metadata=a_md)
    assert bad_fields(err.value) == {"substitute_id"}
    await env.dir.DeactivateStaff(dapi.DeactivateStaffRequest(id=c), metadata=ADMIN)

    async def inactive() -> bool:
        agents = await env.stub.ListAgents(api.ListAgentsRequest(), metadata=SUPERVISOR)
        return any(x.staff_id == c and not x.active for x in agents.agents)

    await eventually(inactive)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.SetAgentAbsence(api.SetAgentAbsenceRequest(
            staff_id=a, absent=True, substitute_id=c), metadata=a_md)
    assert bad_fields(err.value) == {"substitute_id"}
    agents = {x.staff_id: x for x in (await env.stub.ListAgents(
        api.ListAgentsRequest(), metadata=SUPERVISOR)).agents}
    assert not agents[a].absent

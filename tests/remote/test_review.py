"""Review findings: caller mistakes are INVALID_ARGUMENT, never INTERNAL; scopes match whole
staff ids."""

from __future__ import annotations

import grpc
import pytest
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from google.protobuf.timestamp_pb2 import Timestamp

from tests.harness import SUPERVISOR, auth, bad_fields
from tests.remote.test_campaigns import campaign
from tests.remote.test_tickets import on_duty, ticket

OUT_OF_RANGE = Timestamp(seconds=10**15)


async def test_out_of_range_timestamps_are_invalid_argument(env) -> None:
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


async def test_agent_lists_campaigns_that_name_them_in_full(env) -> None:
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

"""Review findings: caller mistakes are INVALID_ARGUMENT, never INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from google.protobuf.timestamp_pb2 import Timestamp

from tests.harness import SUPERVISOR, bad_fields
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

from __future__ import annotations

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as api

from tests.harness import ADMIN, collect_events


async def test_create_and_get_client(stub, nats_url) -> None:
    created = await stub.CreateClient(
        api.CreateClientRequest(
            client=client_pb2.Client(
                account_no="A0001", display_name="Zhang San", channel=client_pb2.CHANNEL_REMOTE,
                risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2026-01-05",
                commission_rate="0.00025",
            ),
            request_id="r1",
        ),
        metadata=ADMIN,
    )
    got = await stub.GetClient(api.GetClientRequest(id=created.id), metadata=ADMIN)
    assert got.account_no == "A0001"
    events = await collect_events(nats_url, "branch.directory.client.created", count=1)
    assert events and events[0].headers["ce-subject"] == created.id

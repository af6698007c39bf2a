from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import client_pb2, events_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.clock import FakeClock
from services.directory.server import SPEC
from tests.directory.factories import client_msg, make_client, make_staff
from tests.harness import (
    ADMIN,
    SUPERVISOR,
    auth,
    bad_fields,
    channel,
    collect_events,
    make_settings,
    running,
)

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub


async def test_create_client_and_event(stub: DirectoryServiceAsyncStub, nats_url: str) -> None:
    manager = await make_staff(stub, "client_manager")
    broker = await make_staff(stub, "broker")
    client = await make_client(stub, client_manager_id=manager.id, broker_id=broker.id,
                               tier=client_pb2.TIER_KEY, opened_on="2025-04-01")
    assert client.status == client_pb2.CLIENT_STATUS_ACTIVE
    assert client.tier == client_pb2.TIER_KEY and client.opened_on == "2025-04-01"
    assert client.commission_rate == "0.00025"
    events = await collect_events(nats_url, "branch.directory.client.created", count=100_000,
                                  timeout=3)
    mine = [m for m in events if m.headers["ce-subject"] == client.id]
    assert len(mine) == 1
    payload = events_pb2.ClientCreated.FromString(mine[0].data)
    assert payload.client.id == client.id and payload.client.broker_id == broker.id
    assert mine[0].headers["Nats-Msg-Id"] == mine[0].headers["ce-id"]
    assert mine[0].headers["ce-source"] == "/branch/directory"


async def test_create_client_names_every_bad_field(stub: DirectoryServiceAsyncStub) -> None:
    broker = await make_staff(stub, "broker")
    bad = client_pb2.Client(
        account_no="", display_name="", phone="call me", channel=client_pb2.Channel.ValueType(0), risk_tolerance=client_pb2.RiskTolerance.ValueType(9),
        risk_assessed_on="2026-13-40", commission_rate="lots", tier=client_pb2.Tier.ValueType(7),
        client_manager_id=broker.id, broker_id="nobody", opened_on="yesterday",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateClient(api.CreateClientRequest(client=bad), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {
        "client.account_no", "client.display_name", "client.phone", "client.channel",
        "client.risk_tolerance", "client.risk_assessed_on", "client.commission_rate",
        "client.tier", "client.client_manager_id", "client.broker_id", "client.opened_on",
    }
    listed = await stub.ListClients(api.ListClientsRequest(), metadata=ADMIN)
    assert listed.total_size == 0


async def test_future_assessment_and_huge_commission_refused(stub: DirectoryServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateClient(api.CreateClientRequest(client=client_msg(
            risk_assessed_on="2999-01-01", commission_rate="0.5")), metadata=ADMIN)
    assert bad_fields(err.value) == {"client.risk_assessed_on", "client.commission_rate"}


async def test_duplicate_account_and_idempotent_retry(stub: DirectoryServiceAsyncStub) -> None:
    msg = client_msg()
    first = await stub.CreateClient(api.CreateClientRequest(client=msg, request_id="k1"),
                                    metadata=ADMIN)
    retry = await stub.CreateClient(api.CreateClientRequest(client=msg, request_id="k1"),
                                    metadata=ADMIN)
    assert retry == first
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateClient(api.CreateClientRequest(client=msg, request_id="k2"),
                                metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateClient(api.CreateClientRequest(client=client_msg(), request_id="x" * 101),
                                metadata=ADMIN)
    assert bad_fields(err.value) == {"request_id"}


async def test_roles_that_may_not_create_clients(stub: DirectoryServiceAsyncStub) -> None:
    for role in ("broker", "client_manager", "analyst", "consultant"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                    metadata=auth("u1", role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetClient(api.GetClientRequest(id="x"), metadata=auth("a1", "analyst"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_brokers_and_managers_see_only_their_clients(stub: DirectoryServiceAsyncStub) -> None:
    b1, b2 = await make_staff(stub, "broker"), await make_staff(stub, "broker")
    m1 = await make_staff(stub, "client_manager")
    mine = await make_client(stub, broker_id=b1.id)
    theirs = await make_client(stub, broker_id=b2.id, client_manager_id=m1.id)
    as_b1 = auth(b1.id, "broker")

    got = await stub.GetClient(api.GetClientRequest(id=mine.id), metadata=as_b1)
    assert got.id == mine.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetClient(api.GetClientRequest(id=theirs.id), metadata=as_b1)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListHoldings(api.ListHoldingsRequest(client_id=theirs.id), metadata=as_b1)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    listed = await stub.ListClients(api.ListClientsRequest(), metadata=as_b1)
    assert [c.id for c in listed.clients] == [mine.id] and listed.total_size == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListClients(api.ListClientsRequest(broker_id=b2.id), metadata=as_b1)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    as_m1 = auth(m1.id, "client_manager")
    listed = await stub.ListClients(api.ListClientsRequest(), metadata=as_m1)
    assert [c.id for c in listed.clients] == [theirs.id]
    branch = await stub.ListClients(api.ListClientsRequest(), metadata=SUPERVISOR)
    assert {mine.id, theirs.id} <= {c.id for c in branch.clients}


async def test_list_filters_and_pages(stub: DirectoryServiceAsyncStub) -> None:
    m = await make_staff(stub, "client_manager")
    key_remote = [await make_client(stub, tier=client_pb2.TIER_KEY,
                                    channel=client_pb2.CHANNEL_REMOTE, client_manager_id=m.id)
                  for _ in range(3)]
    await make_client(stub, channel=client_pb2.CHANNEL_REMOTE,
                      risk_tolerance=client_pb2.RISK_TOLERANCE_C5)
    await make_client(stub)
    req = api.ListClientsRequest(tier=client_pb2.TIER_KEY, channel=client_pb2.CHANNEL_REMOTE,
                                 page_size=2)
    first = await stub.ListClients(req, metadata=ADMIN)
    assert len(first.clients) == 2 and first.next_page_token and first.total_size == 3
    req.page_token = first.next_page_token
    second = await stub.ListClients(req, metadata=ADMIN)
    assert not second.next_page_token
    assert [c.id for c in [*first.clients, *second.clients]] == [c.id for c in key_remote]
    c5 = await stub.ListClients(api.ListClientsRequest(
        risk_tolerance=client_pb2.RISK_TOLERANCE_C5), metadata=ADMIN)
    assert c5.total_size == 1
    by_manager = await stub.ListClients(api.ListClientsRequest(client_manager_id=m.id),
                                        metadata=ADMIN)
    assert by_manager.total_size == 3
    for bad in (api.ListClientsRequest(page_size=-1), api.ListClientsRequest(page_token="%%")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListClients(bad, metadata=ADMIN)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_update_client_with_mask(stub: DirectoryServiceAsyncStub, nats_url: str) -> None:
    m = await make_staff(stub, "client_manager")
    client = await make_client(stub, client_manager_id=m.id)
    change = client_pb2.Client(id=client.id, channel=client_pb2.CHANNEL_REMOTE,
                               display_name="ignored: not in the mask")
    updated = await stub.UpdateClient(
        api.UpdateClientRequest(client=change, update_mask=FieldMask(paths=["channel"])),
        metadata=SUPERVISOR,
    )
    assert updated.channel == client_pb2.CHANNEL_REMOTE
    assert updated.display_name == client.display_name
    events = await collect_events(nats_url, "branch.directory.client.updated", count=100_000,
                                  timeout=3)
    mine = [events_pb2.ClientUpdated.FromString(m.data) for m in events
            if m.headers["ce-subject"] == client.id]
    assert [list(e.changed_fields) for e in mine] == [["channel"]]

    # a manager renews the risk assessment of their own client, but may not move channel
    as_m = auth(m.id, "client_manager")
    renewed = await stub.UpdateClient(api.UpdateClientRequest(
        client=client_pb2.Client(id=client.id, risk_tolerance=client_pb2.RISK_TOLERANCE_C4,
                                 risk_assessed_on="2026-02-01"),
        update_mask=FieldMask(paths=["risk_tolerance", "risk_assessed_on"])), metadata=as_m)
    assert renewed.risk_tolerance == client_pb2.RISK_TOLERANCE_C4
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateClient(api.UpdateClientRequest(
            client=client_pb2.Client(id=client.id, channel=client_pb2.CHANNEL_ONSITE),
            update_mask=FieldMask(paths=["channel"])), metadata=as_m)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    for mask, fields in ((["tier"], {"update_mask"}), ([], {"update_mask"}),
                         (["risk_tolerance"], {"client.risk_tolerance"})):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateClient(api.UpdateClientRequest(
                client=client_pb2.Client(id=client.id, risk_tolerance=client_pb2.RiskTolerance.ValueType(0)),
                update_mask=FieldMask(paths=mask)), metadata=SUPERVISOR)
        assert bad_fields(err.value) == fields
    unchanged = await stub.GetClient(api.GetClientRequest(id=client.id), metadata=ADMIN)
    assert unchanged.risk_tolerance == client_pb2.RISK_TOLERANCE_C4


async def test_change_tier_and_assign_staff(stub: DirectoryServiceAsyncStub, nats_url: str) -> None:
    client = await make_client(stub)
    key = await stub.ChangeClientTier(api.ChangeClientTierRequest(
        id=client.id, tier=client_pb2.TIER_KEY, reason="commission upgrade"), metadata=SUPERVISOR)
    assert key.tier == client_pb2.TIER_KEY
    again = await stub.ChangeClientTier(api.ChangeClientTierRequest(
        id=client.id, tier=client_pb2.TIER_KEY), metadata=SUPERVISOR)
    assert again.tier == client_pb2.TIER_KEY
    events = await collect_events(nats_url, "branch.directory.client.tier_changed", count=100_000,
                                  timeout=3)
    mine = [events_pb2.ClientTierChanged.FromString(m.data) for m in events
            if m.headers["ce-subject"] == client.id]
    assert [(e.old_tier, e.new_tier) for e in mine] == [
        (client_pb2.TIER_STANDARD, client_pb2.TIER_KEY)
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ChangeClientTier(api.ChangeClientTierRequest(id=client.id, tier=client_pb2.Tier.ValueType(0)),
                                    metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"tier"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ChangeClientTier(api.ChangeClientTierRequest(
            id=client.id, tier=client_pb2.TIER_STANDARD), metadata=auth("b", "broker"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    broker = await make_staff(stub, "broker")
    manager = await make_staff(stub, "client_manager")
    assigned = await stub.AssignClientStaff(api.AssignClientStaffRequest(
        id=client.id, broker_id=broker.id, client_manager_id=manager.id), metadata=SUPERVISOR)
    assert (assigned.broker_id, assigned.client_manager_id) == (broker.id, manager.id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AssignClientStaff(api.AssignClientStaffRequest(
            id=client.id, broker_id=manager.id), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"broker_id"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AssignClientStaff(api.AssignClientStaffRequest(
            id="missing", broker_id=broker.id), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_assessment_expires_after_its_second_anniversary(tmp_path: Path, nats_url: str) -> None:
    # 08:00 on 1 June 2026 in Shanghai; valid through 2 June 2026, the second anniversary
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=clock) as runner:
        async with channel(runner) as ch:
            stub = DirectoryServiceStub(ch)
            client = await make_client(stub, risk_assessed_on="2024-06-02")
            assert not client.risk_assessment_expired
            clock.advance(days=1)
            got = await stub.GetClient(api.GetClientRequest(id=client.id), metadata=ADMIN)
            assert not got.risk_assessment_expired
            clock.set(datetime(2026, 6, 2, 16, 0, tzinfo=UTC))  # 00:00 on 3 June local
            got = await stub.GetClient(api.GetClientRequest(id=client.id), metadata=ADMIN)
            assert got.risk_assessment_expired


async def test_far_off_dates_are_refused(stub: DirectoryServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateClient(api.CreateClientRequest(client=client_msg(
            opened_on="0001-01-01", risk_assessed_on="1850-06-01")), metadata=ADMIN)
    assert bad_fields(err.value) == {"client.opened_on", "client.risk_assessed_on"}

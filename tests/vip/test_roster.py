from __future__ import annotations

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.vip.v1 import advisory_pb2, roster_pb2
from branch.vip.v1 import vip_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from tests.harness import ADMIN, SUPERVISOR, auth, bad_fields, collect_events, eventually
from tests.vip.support import ROLE, Branch, broker


async def test_key_client_joins_roster_with_dedicated_broker(b: Branch) -> None:
    br = await b.staff(ROLE.ROLE_BROKER)
    client_id = await b.client(broker_id=br)
    entry = await b.on_roster(client_id)
    assert entry.broker_id == br
    assert entry.status == roster_pb2.ROSTER_STATUS_ACTIVE
    assert entry.risk_tolerance == client_pb2.RISK_TOLERANCE_C3
    events = await collect_events(b.nats_url, "branch.vip.roster.joined", count=1)
    assert events and events[0].headers["ce-subject"] == client_id


async def test_standard_client_not_on_roster_until_tier_changes(b: Branch) -> None:
    br = await b.staff(ROLE.ROLE_BROKER)
    client_id = await b.client(broker_id=br, tier=client_pb2.TIER_STANDARD)
    other = await b.key_client(br)  # processed after the first one: the consumer is in order
    assert other
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                   metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await b.directory.ChangeClientTier(dir_api.ChangeClientTierRequest(
        id=client_id, tier=client_pb2.TIER_KEY, reason="pays key commission"), metadata=ADMIN)
    entry = await b.on_roster(client_id)
    assert entry.status == roster_pb2.ROSTER_STATUS_ACTIVE


async def test_leaving_key_tier_closes_open_work_with_reason(b: Branch) -> None:
    br = await b.staff(ROLE.ROLE_BROKER)
    client_id = await b.key_client(br)
    adv = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=advisory_pb2.Advisory(
        client_id=client_id, question="Should I hold?")), metadata=broker(br))
    await b.directory.ChangeClientTier(dir_api.ChangeClientTierRequest(
        id=client_id, tier=client_pb2.TIER_STANDARD, reason="downgraded"), metadata=ADMIN)

    async def left() -> roster_pb2.RosterEntry | None:
        e = await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                       metadata=SUPERVISOR)
        return e if e.status == roster_pb2.ROSTER_STATUS_LEFT else None

    entry = await eventually(left)
    assert entry.leave_reason == "client is no longer a key client"
    got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
    assert got.state == advisory_pb2.ADVISORY_STATE_CLOSED
    assert got.close_reason == "client is no longer a key client"
    events = await collect_events(b.nats_url, "branch.vip.roster.left", count=1)
    assert events
    # a new advisory is refused now
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=advisory_pb2.Advisory(
            client_id=client_id, question="again?")), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_supervisor_changes_broker_and_backup(b: Branch) -> None:
    br, br2, br3 = [await b.staff(ROLE.ROLE_BROKER) for _ in range(3)]
    analyst = await b.staff(ROLE.ROLE_ANALYST)
    client_id = await b.key_client(br)
    entry = await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
        entry=roster_pb2.RosterEntry(client_id=client_id, broker_id=br2, backup_broker_id=br3),
        update_mask=FieldMask(paths=["broker_id", "backup_broker_id"])), metadata=SUPERVISOR)
    assert (entry.broker_id, entry.backup_broker_id) == (br2, br3)
    # the old broker no longer sees the client; the new one and the backup do
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                   metadata=broker(br))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for who in (br2, br3):
        await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                   metadata=broker(who))
    listed = await b.vip.ListRoster(api.ListRosterRequest(), metadata=broker(br3))
    assert [e.client_id for e in listed.entries] == [client_id]
    listed = await b.vip.ListRoster(api.ListRosterRequest(), metadata=broker(br))
    assert list(listed.entries) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.ListRoster(api.ListRosterRequest(broker_id=br2), metadata=broker(br))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # bad fields
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
            entry=roster_pb2.RosterEntry(client_id=client_id, broker_id=analyst,
                                         backup_broker_id="nobody"),
            update_mask=FieldMask(paths=["broker_id", "backup_broker_id"])),
            metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {"entry.broker_id", "entry.backup_broker_id"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
            entry=roster_pb2.RosterEntry(), update_mask=FieldMask(paths=["status"])),
            metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"entry.client_id", "update_mask"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
            entry=roster_pb2.RosterEntry(client_id=client_id, backup_broker_id=br2),
            update_mask=FieldMask(paths=["backup_broker_id"])), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"entry.backup_broker_id"}
    # a broker may not change the roster
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
            entry=roster_pb2.RosterEntry(client_id=client_id, broker_id=br),
            update_mask=FieldMask(paths=["broker_id"])), metadata=broker(br2))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_no_token_is_unauthenticated(b: Branch) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.ListRoster(api.ListRosterRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.ListRoster(api.ListRosterRequest(),
                               metadata=(("authorization", "Bearer nonsense"),))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.ListRoster(api.ListRosterRequest(), metadata=auth("c1", "consultant"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_directory_updates_follow_to_the_roster(b: Branch) -> None:
    from branch.directory.v1 import client_pb2 as c

    br, br2 = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
    client_id = await b.key_client(br)
    await b.directory.UpdateClient(dir_api.UpdateClientRequest(
        client=c.Client(id=client_id, risk_tolerance=c.RISK_TOLERANCE_C5,
                        risk_assessed_on="2026-02-01"),
        update_mask=FieldMask(paths=["risk_tolerance", "risk_assessed_on"])), metadata=ADMIN)
    await b.directory.AssignClientStaff(dir_api.AssignClientStaffRequest(
        id=client_id, broker_id=br2), metadata=ADMIN)

    async def updated() -> roster_pb2.RosterEntry | None:
        e = await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                       metadata=SUPERVISOR)
        return e if e.broker_id == br2 else None

    entry = await eventually(updated)
    assert entry.risk_tolerance == c.RISK_TOLERANCE_C5
    assert entry.risk_assessed_on == "2026-02-01" and not entry.risk_assessment_expired
    await b.directory.UpdateClient(dir_api.UpdateClientRequest(
        client=c.Client(id=client_id, status=c.CLIENT_STATUS_CLOSED),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN)

    async def left() -> roster_pb2.RosterEntry | None:
        e = await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                       metadata=SUPERVISOR)
        return e if e.status == roster_pb2.ROSTER_STATUS_LEFT else None

    entry = await eventually(left)
    assert entry.leave_reason == "client left the branch"

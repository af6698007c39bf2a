"""A client's new dedicated broker takes over their open relays and advisories: the old
broker no longer reaches the client through the inbox, get, list or work RPCs."""

from __future__ import annotations

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.vip.v1 import advisory_pb2, relay_pb2, roster_pb2
from branch.vip.v1 import vip_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from tests.harness import ADMIN, SUPERVISOR, eventually
from tests.vip.support import ROLE, Branch, broker, publish
from tests.vip.test_relay import note, planned

R = relay_pb2


async def open_work(b: Branch, br: str, note_id: str) -> tuple[str, str, str]:
    client_id = await b.key_client(br)
    await b.holdings([(client_id, "600519")])
    await publish(b.nats_url, "branch.research.note.published", note(note_id, "600519"))
    plans = await planned(b, count=int(note_id[-1]))
    assert plans[-1].targeted == 1
    [relay] = (await b.vip.ListRelays(api.ListRelaysRequest(note_id=note_id),
                                      metadata=SUPERVISOR)).relays
    adv = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=advisory_pb2.Advisory(
        client_id=client_id, question="Q?")), metadata=broker(br))
    assert adv.assignee_id == br and relay.broker_id == br
    return client_id, relay.id, adv.id


async def assert_moved(b: Branch, old: str, new: str, relay_id: str, adv_id: str) -> None:
    inbox = await b.inbox(old)
    assert list(inbox.items) == [] and inbox.relay_count == 0 and inbox.advisory_count == 0
    for call in (b.vip.GetRelay(api.GetRelayRequest(id=relay_id), metadata=broker(old)),
                 b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv_id), metadata=broker(old)),
                 b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
                     id=relay_id, channel=R.RELAY_CHANNEL_PHONE, summary="x"),
                     metadata=broker(old)),
                 b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv_id),
                                           metadata=broker(old))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert list((await b.vip.ListRelays(api.ListRelaysRequest(),
                                        metadata=broker(old))).relays) == []
    assert list((await b.vip.ListAdvisories(api.ListAdvisoriesRequest(),
                                            metadata=broker(old))).advisories) == []
    inbox = await b.inbox(new)
    assert {i.relay.id or i.advisory.id for i in inbox.items} == {relay_id, adv_id}
    done = await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
        id=relay_id, channel=R.RELAY_CHANNEL_PHONE, summary="Explained."), metadata=broker(new))
    assert done.broker_id == new
    adv = await b.vip.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv_id),
                                          metadata=broker(new))
    assert adv.assignee_id == new and adv.dedicated_broker_id == new


async def test_supervisor_reassigning_a_client_moves_open_work(b: Branch) -> None:
    br, br2 = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
    client_id, relay_id, adv_id = await open_work(b, br, "r1")
    await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
        entry=roster_pb2.RosterEntry(client_id=client_id, broker_id=br2),
        update_mask=FieldMask(paths=["broker_id"])), metadata=SUPERVISOR)
    await assert_moved(b, br, br2, relay_id, adv_id)


async def test_directory_reassignment_moves_open_work(b: Branch) -> None:
    br, br2 = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
    client_id, relay_id, adv_id = await open_work(b, br, "r1")
    await b.directory.AssignClientStaff(dir_api.AssignClientStaffRequest(
        id=client_id, broker_id=br2), metadata=ADMIN)

    async def moved() -> relay_pb2.RelayTask | None:
        got = await b.vip.GetRelay(api.GetRelayRequest(id=relay_id), metadata=SUPERVISOR)
        return got if got.broker_id == br2 else None

    await eventually(moved)
    await assert_moved(b, br, br2, relay_id, adv_id)

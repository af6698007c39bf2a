"""Assignment scope: the on-call broker handling another broker's key client's advisory may
read that client's name and phone (audited) while the advisory is open; other brokers may not.
Real directory and vip on real NATS: the directory learns the assignment from vip's events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from branch.common.v1 import audit_pb2
from branch.common.v1.audit_pb2_grpc import AuditServiceStub
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import search_pb2 as spb
from branch.vip.v1 import advisory_pb2
from branch.vip.v1 import vip_service_pb2 as vapi
from google.protobuf.field_mask_pb2 import FieldMask

from tests.harness import ADMIN, SUPERVISOR, eventually
from tests.vip.support import ROLE, Branch, branch, broker


async def _read(b: Branch, client_id: str, who: str) -> client_pb2.Client | grpc.StatusCode:
    try:
        return await b.directory.GetClient(dapi.GetClientRequest(id=client_id),
                                           metadata=broker(who))
    except grpc.aio.AioRpcError as err:
        return err.code()


async def test_on_call_broker_reads_the_client_of_their_advisory(tmp_path: Path) -> None:
    async with branch(tmp_path) as b:
        own = await b.staff(ROLE.ROLE_BROKER)
        on_call = await b.staff(ROLE.ROLE_BROKER)
        stranger = await b.staff(ROLE.ROLE_BROKER)
        client_id = await b.key_client(own)
        await b.directory.UpdateClient(dapi.UpdateClientRequest(
            client=client_pb2.Client(id=client_id, display_name="张三",
                                     phone="+86 130 8938 4935"),
            update_mask=FieldMask(paths=["display_name", "phone"])), metadata=ADMIN)
        now = b.clock.now()
        await b.shift(on_call, now - timedelta(hours=1), now + timedelta(hours=7))
        assert await _read(b, client_id, on_call) == grpc.StatusCode.PERMISSION_DENIED

        adv = await b.vip.CreateAdvisory(vapi.CreateAdvisoryRequest(
            advisory=advisory_pb2.Advisory(client_id=client_id, question="Hold 600519?",
                                           tickers=["600519"])), metadata=broker(own))
        assert adv.assignee_id == on_call

        async def readable() -> client_pb2.Client | None:
            got = await _read(b, client_id, on_call)
            return got if isinstance(got, client_pb2.Client) else None

        got = await eventually(readable)
        assert got.display_name == "张三" and got.phone == "+86 130 8938 4935"
        assert await _read(b, client_id, stranger) == grpc.StatusCode.PERMISSION_DENIED
        # the on-call broker finds the client by name too, with the full phone
        found = await b.directory.SearchClients(spb.SearchClientsRequest(query="zs"),
                                                metadata=broker(on_call))
        assert [(r.id, r.phone) for r in found.results] == [(client_id, "+86 130 8938 4935")]
        assert not (await b.directory.SearchClients(spb.SearchClientsRequest(query="zs"),
                                                    metadata=broker(stranger))).results
        # holdings and trades stay the client's own broker's
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.directory.ListHoldings(dapi.ListHoldingsRequest(client_id=client_id),
                                           metadata=broker(on_call))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # each read through the assignment is audited
        audit = AuditServiceStub(b.channels["directory"])
        records = (await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(
            staff_id=on_call, method="GetClient"), metadata=SUPERVISOR)).audit_records
        assert len(records) == 1
        assert records[0].resource == f"client/{client_id} via vip.advisory/{adv.id}"

        # the advisory closed, the grant ends
        await b.vip.CloseAdvisory(vapi.CloseAdvisoryRequest(id=adv.id, reason="client called"),
                                  metadata=broker(on_call))

        async def refused() -> bool:
            return await _read(b, client_id, on_call) == grpc.StatusCode.PERMISSION_DENIED

        assert await eventually(refused)

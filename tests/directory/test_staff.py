from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import staff_pb2

from tests.directory.factories import ROLE, make_staff
from tests.harness import ADMIN, SUPERVISOR, auth, bad_fields, collect_events

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub


async def test_create_get_list_deactivate_staff(stub: DirectoryServiceAsyncStub, nats_url: str) -> None:
    lead = await make_staff(stub, "supervisor")
    broker = await make_staff(stub, "broker", "analyst", team_lead_id=lead.id)
    assert set(broker.roles) == {staff_pb2.ROLE_BROKER, staff_pb2.ROLE_ANALYST}
    assert broker.active and broker.team_lead_id == lead.id

    got = await stub.GetStaff(api.GetStaffRequest(id=broker.id), metadata=auth("x", "broker"))
    assert got == broker

    brokers = await stub.ListStaff(api.ListStaffRequest(role=staff_pb2.ROLE_BROKER),
                                   metadata=SUPERVISOR)
    assert [s.id for s in brokers.staff] == [broker.id]

    gone = await stub.DeactivateStaff(api.DeactivateStaffRequest(id=broker.id), metadata=ADMIN)
    assert not gone.active and gone.HasField("deactivate_time")
    active = await stub.ListStaff(api.ListStaffRequest(), metadata=ADMIN)
    assert broker.id not in {s.id for s in active.staff}
    everyone = await stub.ListStaff(api.ListStaffRequest(include_inactive=True), metadata=ADMIN)
    assert broker.id in {s.id for s in everyone.staff}

    created = await collect_events(nats_url, "branch.directory.staff.created", count=100_000, timeout=3)
    assert broker.id in {m.headers["ce-subject"] for m in created}
    deactivated = await collect_events(nats_url, "branch.directory.staff.deactivated", count=100_000,
                                       timeout=3)
    assert broker.id in {m.headers["ce-subject"] for m in deactivated}


async def test_list_staff_pages(stub: DirectoryServiceAsyncStub) -> None:
    made = [await make_staff(stub, "consultant") for _ in range(5)]
    seen, token = [], ""
    while True:
        page = await stub.ListStaff(
            api.ListStaffRequest(page_size=2, page_token=token, role=staff_pb2.ROLE_CONSULTANT),
            metadata=ADMIN,
        )
        assert len(page.staff) <= 2
        seen += [s.id for s in page.staff]
        token = page.next_page_token
        if not token:
            break
    assert seen == [s.id for s in made]


async def test_create_staff_names_every_bad_field(stub: DirectoryServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateStaff(
            api.CreateStaffRequest(staff=staff_pb2.Staff(team_lead_id="nobody")), metadata=ADMIN
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {
        "staff.employee_no", "staff.display_name", "staff.roles", "staff.team_lead_id",
    }
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateStaff(
            api.CreateStaffRequest(staff=staff_pb2.Staff(employee_no="X1", display_name="x",
                                                         roles=[staff_pb2.Role.ValueType(99)])), metadata=ADMIN)
    assert bad_fields(err.value) == {"staff.roles"}


async def test_duplicate_employee_no_and_idempotent_retry(stub: DirectoryServiceAsyncStub) -> None:
    staff = staff_pb2.Staff(employee_no="DUP1", display_name="A", roles=[ROLE["broker"]])
    first = await stub.CreateStaff(api.CreateStaffRequest(staff=staff, request_id="same"),
                                   metadata=ADMIN)
    again = await stub.CreateStaff(api.CreateStaffRequest(staff=staff, request_id="same"),
                                   metadata=ADMIN)
    assert again.id == first.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateStaff(api.CreateStaffRequest(staff=staff, request_id="other"),
                               metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_only_admin_manages_staff(stub: DirectoryServiceAsyncStub) -> None:
    staff = staff_pb2.Staff(employee_no="NOPE", display_name="A", roles=[ROLE["broker"]])
    for role in ("supervisor", "broker", "client_manager"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateStaff(api.CreateStaffRequest(staff=staff), metadata=auth("u", role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IssueToken(api.IssueTokenRequest(staff_id="x"), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await stub.ListStaff(api.ListStaffRequest(include_inactive=True), metadata=ADMIN)
    assert "NOPE" not in {s.employee_no for s in listed.staff}


async def test_missing_or_bad_token_is_unauthenticated(stub: DirectoryServiceAsyncStub) -> None:
    for metadata in ([], [("authorization", "Bearer not-a-jwt")],
                     [("authorization", "Basic abc")]):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListStaff(api.ListStaffRequest(), metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_issue_token_works_and_refuses_inactive_staff(stub: DirectoryServiceAsyncStub) -> None:
    broker = await make_staff(stub, "broker")
    issued = await stub.IssueToken(api.IssueTokenRequest(staff_id=broker.id, ttl_seconds=600),
                                   metadata=ADMIN)
    mine = [("authorization", f"Bearer {issued.token}")]
    me = await stub.GetStaff(api.GetStaffRequest(id=broker.id), metadata=mine)
    assert me.id == broker.id
    # the broker's token carries the broker role only: staff management stays closed
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeactivateStaff(api.DeactivateStaffRequest(id=broker.id), metadata=mine)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    await stub.DeactivateStaff(api.DeactivateStaffRequest(id=broker.id), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IssueToken(api.IssueTokenRequest(staff_id=broker.id), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IssueToken(api.IssueTokenRequest(staff_id="", ttl_seconds=-1), metadata=ADMIN)
    assert bad_fields(err.value) == {"staff_id", "ttl_seconds"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStaff(api.GetStaffRequest(id="missing"), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bootstrap_admin_exists(stub: DirectoryServiceAsyncStub) -> None:
    staff = await stub.ListStaff(api.ListStaffRequest(role=staff_pb2.ROLE_ADMIN), metadata=ADMIN)
    assert [s.employee_no for s in staff.staff] == ["ADMIN"]

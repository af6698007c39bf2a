"""Test data for the directory, made through its public API."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as api

from tests.harness import ADMIN

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

_seq = itertools.count(1)

ROLE = {
    "client_manager": staff_pb2.ROLE_CLIENT_MANAGER,
    "consultant": staff_pb2.ROLE_CONSULTANT,
    "service_agent": staff_pb2.ROLE_SERVICE_AGENT,
    "broker": staff_pb2.ROLE_BROKER,
    "analyst": staff_pb2.ROLE_ANALYST,
    "compliance": staff_pb2.ROLE_COMPLIANCE,
    "supervisor": staff_pb2.ROLE_SUPERVISOR,
    "admin": staff_pb2.ROLE_ADMIN,
}


async def make_staff(stub: DirectoryServiceAsyncStub, *roles: str, **fields: Any) -> staff_pb2.Staff:
    n = next(_seq)
    staff = staff_pb2.Staff(
        employee_no=fields.pop("employee_no", f"E{n:05d}"),
        display_name=fields.pop("display_name", f"Staff {n}"),
        roles=[ROLE[r] for r in roles],
        **fields,
    )
    return await stub.CreateStaff(api.CreateStaffRequest(staff=staff), metadata=ADMIN)


def client_msg(**fields: Any) -> client_pb2.Client:
    n = next(_seq)
    defaults: dict[str, Any] = dict(
        account_no=f"A{n:07d}",
        display_name=f"Client {n}",
        phone="+86 138 0000 0000",
        channel=client_pb2.CHANNEL_ONSITE,
        risk_tolerance=client_pb2.RISK_TOLERANCE_C3,
        risk_assessed_on="2026-01-15",
        commission_rate="0.00025",
    )
    defaults.update(fields)
    return client_pb2.Client(**defaults)


async def make_client(stub: DirectoryServiceAsyncStub, **fields: Any) -> client_pb2.Client:
    return await stub.CreateClient(api.CreateClientRequest(client=client_msg(**fields)),
                                   metadata=ADMIN)

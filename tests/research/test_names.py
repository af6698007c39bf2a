"""Names travel with ids (issue 13): research keeps clients' and staff members' display names
from the directory's events; notes and research requests carry them beside the ids."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.research.v1 import research_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.clock import FakeClock
from services.directory.server import SPEC as DIRECTORY
from tests.harness import ADMIN, auth, channel, eventually, make_settings, running, unique
from tests.research.factories import create, research_request

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub


async def test_notes_and_requests_carry_names_and_a_rename_reaches_them(
        stub: ResearchServiceAsyncStub, clock: FakeClock, tmp_path: Path, nats_url: str) -> None:
    async with running(DIRECTORY, make_settings(tmp_path / "dir", nats_url)) as directory, \
            channel(directory) as ch:
        d = DirectoryServiceStub(ch)

        async def staff(name: str, role: staff_pb2.Role.ValueType) -> str:
            return (await d.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
                employee_no=unique("E"), display_name=name, roles=[role])),
                metadata=ADMIN)).id

        analyst = await staff("周研究", staff_pb2.ROLE_ANALYST)
        consultant = await staff("吴顾问", staff_pb2.ROLE_CONSULTANT)
        client = (await d.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
            account_no=unique("A"), display_name="郑客户", channel=client_pb2.CHANNEL_ONSITE,
            risk_tolerance=client_pb2.RiskTolerance.ValueType(3), risk_assessed_on="2025-06-01", commission_rate="0.00025")),
            metadata=ADMIN)).id
        note = await create(stub, auth(analyst, "analyst"))
        asked = await stub.CreateResearchRequest(api.CreateResearchRequestRequest(
            research_request=research_request(clock, client_id=client)),
            metadata=auth(consultant, "consultant"))

        async def named() -> bool:
            n = await stub.GetNote(api.GetNoteRequest(id=note.id),
                                   metadata=auth(analyst, "analyst"))
            got = await stub.ListResearchRequests(api.ListResearchRequestsRequest(
                page_size=100), metadata=ADMIN)
            r = next(r for r in got.research_requests if r.id == asked.id)
            return (n.author_display_name, r.client_display_name, r.asker_display_name) == (
                "周研究", "郑客户", "吴顾问")

        await eventually(named)
        await d.UpdateClient(dapi.UpdateClientRequest(
            client=client_pb2.Client(id=client, display_name="郑大客户"),
            update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN)

        async def renamed() -> bool:
            r = await stub.GetResearchRequest(api.GetResearchRequestRequest(id=asked.id),
                                              metadata=ADMIN)
            return r.client_display_name == "郑大客户"

        await eventually(renamed)

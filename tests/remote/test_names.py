"""Names travel with ids (issue 13): remote keeps clients' and staff members' display names
from the directory's events, responses carry them beside the ids, and branchctl prints them
beside FULL ids."""

from __future__ import annotations

from pathlib import Path

from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.remote.v1 import remote_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.remote.models import PersonName
from tests.cli_process import branchctl, full_ids
from tests.harness import ADMIN, SUPERVISOR, auth, eventually, token, unique
from tests.remote.conftest import Env
from tests.remote.test_tickets import INVEST, ticket


async def _agent(env: Env, name: str) -> str:
    made = await env.dir.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no=unique("E"), display_name=name, roles=[staff_pb2.ROLE_SERVICE_AGENT])),
        metadata=ADMIN)
    await env.stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id=made.id, lines=[INVEST],
                                                        on_duty=True),
                                metadata=auth(made.id, "service_agent"))
    return made.id


async def _client(env: Env, name: str) -> client_pb2.Client:
    return await env.dir.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
        account_no=unique("A"), display_name=name, phone="13800000000",
        channel=client_pb2.CHANNEL_REMOTE, tier=client_pb2.TIER_STANDARD, risk_tolerance=client_pb2.RiskTolerance.ValueType(3),
        risk_assessed_on="2025-06-01", commission_rate="0.00025", opened_on="2024-05-06")),
        metadata=ADMIN)


async def test_tickets_carry_names_and_a_rename_reaches_them(env: Env) -> None:
    agent = await _agent(env, "王小明")
    client = await _client(env, "李雷")
    made = await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(client_id=client.id)),
                                     metadata=auth(agent, "service_agent"))
    assert made.owner_id == agent

    async def named() -> bool:
        got = await env.stub.ListTickets(api.ListTicketsRequest(staff_id=agent),
                                         metadata=SUPERVISOR)
        t = got.tickets[0]
        return t.client_display_name == "李雷" and t.owner_display_name == "王小明"

    await eventually(named)
    agents = await env.stub.ListAgents(api.ListAgentsRequest(), metadata=SUPERVISOR)
    assert {a.staff_display_name for a in agents.agents if a.staff_id == agent} == {"王小明"}

    await env.dir.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=client.id, display_name="李雷雷"),
        update_mask=FieldMask(paths=["display_name"])), metadata=SUPERVISOR)

    async def renamed() -> bool:
        t = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=SUPERVISOR)
        return t.client_display_name == "李雷雷"

    await eventually(renamed)
    async with env.remote.db.read() as s:
        row = await s.get(PersonName, client.id)
    assert row is not None and row.kind == "client" and row.display_name == "李雷雷"


async def test_an_unknown_id_has_an_empty_name(env: Env) -> None:
    agent = await _agent(env, "韩梅梅")
    made = await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket()),
                                     metadata=auth(agent, "service_agent"))
    async with env.remote.db.transaction() as s:
        await s.delete(await s.get(PersonName, agent))
    t = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=SUPERVISOR)
    assert t.owner_id == agent and t.owner_display_name == "" and t.client_display_name == ""


async def test_branchctl_tickets_and_day_print_names_beside_full_ids(env: Env, tmp_path: Path) -> None:
    agent = await _agent(env, "欧阳子涵")
    client = await _client(env, "司马相如")
    made = await env.stub.OpenTicket(api.OpenTicketRequest(ticket=ticket(
        client_id=client.id, summary="a long question " * 8)),
        metadata=auth(agent, "service_agent"))

    async def named() -> bool:
        t = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=SUPERVISOR)
        return bool(t.client_display_name and t.owner_display_name)

    await eventually(named)
    ports = {"remote": env.remote.port, "directory": env.directory.port}
    out = await branchctl(tmp_path, token("sup-1", "supervisor"), ports, "remote", "tickets")
    assert {made.id, client.id, agent} <= full_ids(out), out
    assert "司马相如" in out and "欧阳子涵" in out
    assert "a long question" in out and "…" in out  # free text is what gets cut
    out = await branchctl(tmp_path, token(agent, "service_agent"), ports, "remote", "day")
    assert {made.id, client.id, agent} <= full_ids(out), out
    assert "司马相如" in out and "欧阳子涵" in out

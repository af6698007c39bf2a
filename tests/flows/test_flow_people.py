"""A day typed with names, employee numbers, account numbers and phones, never a UUID: real
branchctl subprocesses against the real directory, remote and onsite services."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1 import ticket_pb2
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.directory.server import SPEC as DIRECTORY
from services.onsite.server import SPEC as ONSITE
from services.remote.server import SPEC as REMOTE
from tests.harness import ADMIN, auth, found, make_settings, running, token

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceAsyncStub

BRANCHCTL = str(Path(sys.executable).parent / "branchctl")
# Monday 2 March 2026, 09:30 in Asia/Shanghai.
START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@dataclass
class Branch:
    runners: dict[str, ServiceRunner]
    directory: DirectoryServiceAsyncStub
    remote: RemoteServiceAsyncStub
    home: Path

    async def ctl(self, *args: str, tok: str) -> tuple[int, str]:
        env = {**os.environ, "BRANCHCTL_HOME": str(self.home), "BRANCH_TOKEN": tok,
               **{f"BRANCH_{name.upper()}_ADDR": f"127.0.0.1:{r.port}"
                  for name, r in self.runners.items()}}
        proc = await asyncio.create_subprocess_exec(
            BRANCHCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()


@pytest.fixture
async def branch(tmp_path: Path, nats_url: str) -> AsyncIterator[Branch]:
    clock = FakeClock(START)
    async with AsyncExitStack() as stack:
        directory = await stack.enter_async_context(
            running(DIRECTORY, make_settings(tmp_path / "dir", nats_url)))
        addr = {"directory_addr": f"127.0.0.1:{directory.port}"}
        remote = await stack.enter_async_context(running(
            REMOTE, make_settings(tmp_path / "remote", nats_url, **addr), clock=clock))
        onsite = await stack.enter_async_context(running(
            ONSITE, make_settings(tmp_path / "onsite", nats_url, **addr), clock=clock))
        dch = grpc.aio.insecure_channel(f"127.0.0.1:{directory.port}")
        rch = grpc.aio.insecure_channel(f"127.0.0.1:{remote.port}")
        stack.push_async_callback(dch.close)
        stack.push_async_callback(rch.close)
        yield Branch({"directory": directory, "remote": remote, "onsite": onsite},
                     DirectoryServiceStub(dch), RemoteServiceStub(rch), tmp_path / "ctl")


async def _staff(b: Branch, employee_no: str, name: str,
                 role: staff_pb2.Role.ValueType) -> staff_pb2.Staff:
    return await b.directory.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no=employee_no, display_name=name, roles=[role])), metadata=ADMIN)


async def test_a_day_typing_names_and_numbers(branch: Branch) -> None:
    b = branch
    agent = await _staff(b, "S0017", "刘洋", staff_pb2.ROLE_SERVICE_AGENT)
    manager = await _staff(b, "S0003", "陈静", staff_pb2.ROLE_CLIENT_MANAGER)
    broker = await _staff(b, "S0025", "Wang Bo", staff_pb2.ROLE_BROKER)
    for n in (30, 31):
        await _staff(b, f"S00{n}", "张伟", staff_pb2.ROLE_SERVICE_AGENT)
    zhang = await b.directory.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
        account_no="310000123456", display_name="张三", phone="13089384935",
        channel=client_pb2.CHANNEL_ONSITE, tier=client_pb2.TIER_KEY,
        risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2025-06-01",
        commission_rate="0.00025", broker_id=broker.id, client_manager_id=manager.id)),
        metadata=ADMIN)
    admin_tok = token("admin-1", "admin")
    sup_tok = token("sup-1", "supervisor")
    agent_tok = token(agent.id, "service_agent")

    # log in by employee number
    code, out = await b.ctl("login", "--as", "S0003", tok=admin_tok)
    assert code == 0 and f"signed in as S0003 ({manager.id})" in out, out

    # the agent goes on duty and takes a call from 张三's number, typed with +86 and spaces
    await b.remote.SetAgentDuty(rapi.SetAgentDutyRequest(
        staff_id=agent.id, lines=[ticket_pb2.LINE_INVESTMENT], on_duty=True),
        metadata=auth(agent.id, "service_agent"))
    for phone, client in (("+86 130 8938 4935", f"{zhang.id} (key)"),
                          ("+86 139 0000 0000", "- (unidentified)")):
        code, out = await b.ctl("remote", "open", "--line", "investment", "--summary", "call",
                                "--phone", phone, tok=agent_tok)
        assert code == 0, out
        ticket = found(r"│ (\S{36}) │", out)
        code, out = await b.ctl("remote", "ticket", ticket, tok=agent_tok)
        assert code == 0 and client in out, out

    # the supervisor's filters take employee numbers and answer with the real figures
    code, out = await b.ctl("remote", "stats", "--agent", "S0017", tok=sup_tok)
    assert code == 0 and agent.id in out, out
    assert out.split(agent.id, 1)[1].split()[1] == "2", out  # 2 tickets accepted
    code, out = await b.ctl("directory", "clients", "--broker", "S0025", tok=sup_tok)
    assert code == 0 and "(1 match)" in out and zhang.id in out, out

    # the manager plans and records a visit naming the client by pinyin initials and
    # account number; the supervisor sees the day by employee number
    manager_tok = token(manager.id, "client_manager")
    code, out = await b.ctl("onsite", "plan", "--date", "2026-03-02", "--visit",
                            "310000123456:dividends", tok=manager_tok)
    assert code == 0 and "1 visits" in out, out
    code, out = await b.ctl("onsite", "visit", "zs", "--room", "VIP 1", tok=manager_tok)
    assert code == 0, out
    code, out = await b.ctl("onsite", "day", "--manager", "S0003", tok=sup_tok)
    assert code == 0 and zhang.id in out and "VIP 1" in out and "dividends" in out, out

    # a client by account number, phone digits or name
    for typed in ("310000123456", "4935", "张三"):
        code, out = await b.ctl("directory", "client", typed, tok=sup_tok)
        assert code == 0 and "张三" in out and "310000123456" in out, (typed, out)

    # an ambiguous name lists the candidates and stops; no match says so
    code, out = await b.ctl("remote", "stats", "--agent", "张伟", tok=sup_tok)
    assert code == 1 and "S0030" in out and "S0031" in out and "several" in out, out
    assert "Traceback" not in out
    code, out = await b.ctl("remote", "stats", "--agent", "S9999", tok=sup_tok)
    assert code == 1 and "no staff member matches 'S9999'" in out, out
    code, out = await b.ctl("directory", "clients", "--broker", "nobody", tok=sup_tok)
    assert code == 1 and "no staff member matches 'nobody'" in out, out
    # a broker names only their own clients: another's account number is "no match"
    other = await b.directory.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
        account_no="310000777777", display_name="李四", phone="13700000000",
        channel=client_pb2.CHANNEL_ONSITE, risk_tolerance=client_pb2.RISK_TOLERANCE_C3,
        risk_assessed_on="2025-06-01", commission_rate="0.00025")), metadata=ADMIN)
    code, out = await b.ctl("directory", "client", "310000777777",
                            tok=token(broker.id, "broker"))
    assert code == 1 and "no client matches" in out and other.id not in out, out

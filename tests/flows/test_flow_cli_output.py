"""branchctl for people and scripts against the real directory and onsite services: a readable
client view, JSON and CSV lists, exit status by gRPC status, refusals naming the flag."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.directory.server import SPEC as DIRECTORY
from services.onsite.server import SPEC as ONSITE
from tests.harness import ADMIN, make_settings, running, token

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

BRANCHCTL = str(Path(sys.executable).parent / "branchctl")
START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # Monday 09:30 in Asia/Shanghai


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLOSED = _closed_port()


@dataclass
class Suite:
    runners: dict[str, ServiceRunner]
    directory: DirectoryServiceAsyncStub
    home: Path

    async def ctl(self, *args: str, tok: str) -> tuple[int, str, str]:
        env = {**os.environ, "BRANCHCTL_HOME": str(self.home), "BRANCH_TOKEN": tok,
               "BRANCH_TIMEZONE": "Asia/Shanghai",
               # the services this test does not run: nobody listens there
               **{f"BRANCH_{name}_ADDR": f"127.0.0.1:{CLOSED}"
                  for name in ("RESEARCH", "REMOTE", "VIP")},
               **{f"BRANCH_{name.upper()}_ADDR": f"127.0.0.1:{r.port}"
                  for name, r in self.runners.items()}}
        proc = await asyncio.create_subprocess_exec(
            BRANCHCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def suite(tmp_path: Path, nats_url: str) -> AsyncIterator[Suite]:
    import grpc

    clock = FakeClock(START)
    async with AsyncExitStack() as stack:
        directory = await stack.enter_async_context(
            running(DIRECTORY, make_settings(tmp_path / "dir", nats_url)))
        onsite = await stack.enter_async_context(running(
            ONSITE, make_settings(tmp_path / "onsite", nats_url,
                                  directory_addr=f"127.0.0.1:{directory.port}"), clock=clock))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{directory.port}")
        stack.push_async_callback(channel.close)
        yield Suite({"directory": directory, "onsite": onsite}, DirectoryServiceStub(channel),
                    tmp_path / "ctl")


async def test_people_and_scripts_read_the_same_answers(suite: Suite) -> None:
    manager = await suite.directory.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no="S0003", display_name="陈静", roles=[staff_pb2.ROLE_CLIENT_MANAGER])),
        metadata=ADMIN)
    zhang = await suite.directory.CreateClient(dapi.CreateClientRequest(
        client=client_pb2.Client(
            account_no="310000123456", display_name="张三", phone="13089384935",
            channel=client_pb2.CHANNEL_ONSITE, tier=client_pb2.TIER_KEY,
            risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2025-06-01",
            commission_rate="0.00025", client_manager_id=manager.id)), metadata=ADMIN)
    sup = token("sup-1", "supervisor")

    # one client for a person: enum names humanised, times with the year, no protobuf text
    code, out, err = await suite.ctl("directory", "client", "310000123456", tok=sup)
    assert code == 0, err
    assert "CHANNEL_" not in out and "seconds" not in out and "nanos" not in out, out
    assert "onsite" in out and "key" in out and "C3" in out, out
    assert str(datetime.now(UTC).year) in out.split("create time", 1)[1].splitlines()[0], out

    # the same client for a script: the API's names and values
    code, out, err = await suite.ctl("directory", "client", "310000123456", "-o", "json",
                                     tok=sup)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["id"] == zhang.id and doc["channel"] == "CHANNEL_ONSITE", doc
    assert doc["create_time"].endswith("Z"), doc

    # lists for scripts: JSON and CSV carry full ids, whatever the terminal width
    code, out, err = await suite.ctl("--output", "json", "directory", "staff", tok=sup)
    assert code == 0, err
    staff = json.loads(out)
    assert manager.id in [s["id"] for s in staff]
    code, out, err = await suite.ctl("directory", "clients", "-o", "csv", tok=sup)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["id"] for r in rows] == [zhang.id] and rows[0]["account"] == "310000123456"
    await suite.directory.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
        account_no="310000654321", display_name="李四", channel=client_pb2.CHANNEL_REMOTE,
        tier=client_pb2.TIER_STANDARD, risk_tolerance=client_pb2.RISK_TOLERANCE_C2,
        risk_assessed_on="2025-06-01", commission_rate="0.0003")), metadata=ADMIN)
    # a page of a longer list: stdout is still one JSON document; the hint goes to stderr
    code, out, err = await suite.ctl("directory", "clients", "-o", "json", "--limit", "1",
                                     tok=sup)
    assert code == 0 and len(json.loads(out)) == 1 and "next page" in err, (out, err)

    # exit status by the service's gRPC status: NOT_FOUND (5) -> 15
    code, out, err = await suite.ctl("directory", "client", "0e4f5b7a-1111-4222-8333-94445555"
                                     "6666", tok=sup)
    assert code == 15 and "NOT_FOUND" in err and "Traceback" not in err + out, err
    # in Chinese: the service's zh-CN LocalizedMessage and branchctl's own words
    code, out, err = await suite.ctl("--lang", "zh_CN", "directory", "client",
                                     "0e4f5b7a-1111-4222-8333-944455556666", tok=sup)
    assert code == 15 and err.startswith(
        "错误：NOT_FOUND: 找不到客户 0e4f5b7a-1111-4222-8333-944455556666"), err

    # a refusal names the flag the person typed, not the API field: a visit in the future
    code, out, err = await suite.ctl("onsite", "visit", "310000123456", "--at",
                                     "2026-12-01 10:00", tok=token(manager.id, "client_manager"))
    assert code == 13, (out, err)
    assert "--at:" in err and "visit_time" not in err, err
    # PERMISSION_DENIED (7) -> 17: a service agent may not change a client's tier
    code, out, err = await suite.ctl("directory", "tier", "310000123456", "standard",
                                     tok=token("agent-1", "service_agent"))
    assert code == 17 and "PERMISSION_DENIED" in err, (code, err)


async def test_audit_and_today(suite: Suite) -> None:
    manager = await suite.directory.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no="S0003", display_name="陈静", roles=[staff_pb2.ROLE_CLIENT_MANAGER])),
        metadata=ADMIN)
    await suite.directory.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
        account_no="310000123456", display_name="张三", channel=client_pb2.CHANNEL_ONSITE,
        tier=client_pb2.TIER_STANDARD, risk_tolerance=client_pb2.RISK_TOLERANCE_C3,
        risk_assessed_on="2025-06-01", commission_rate="0.00025",
        client_manager_id=manager.id)), metadata=ADMIN)
    sup = token("sup-1", "supervisor")
    code, out, err = await suite.ctl("directory", "tier", "310000123456", "key", "--reason",
                                     "large holdings", tok=sup)
    assert code == 0, err

    # every service's audit records in one list: directory answers, the three stopped
    # services are named, and the exit status says one did not answer (24 UNAVAILABLE)
    code, out, err = await suite.ctl("-o", "json", "audit", "--since", "1 hour ago", tok=sup)
    assert code == 24 and "Traceback" not in err, err
    records = json.loads(out)
    assert any(r["method"].endswith("ChangeClientTier") and r["service"] == "directory"
               and r["staff"] == "sup-1" for r in records), records
    assert all(name in err for name in ("research", "remote", "vip")), err

    # a client manager's today is the day's plan; nothing else is needed
    code, out, err = await suite.ctl("today", tok=token(manager.id, "client_manager"))
    assert code == 0 and "branchctl onsite day" in out and "plan for" in out, (out, err)
    # a supervisor's today: onsite's overdue forms shown though vip and remote are down
    code, out, err = await suite.ctl("today", tok=sup)
    assert code == 24 and "overdue forms: 0" in out, (out, err)
    assert "vip breaches: UNAVAILABLE" in err and "Traceback" not in err, err

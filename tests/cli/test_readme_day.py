"""README.md's "A day's work per role, without a UUID", run as written: every branchctl line
of the block between the day-by-role markers, against the six services, each profile signed
in as the staff member whose employee number names it. No line holds a UUID; every line
succeeds; the people it names appear by name in what it prints.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.server import ServiceRunner
from tests.cli.suite import point_at, run_main, six_services
from tests.cli_process import UUID
from tests.harness import ADMIN, channel, token

README = Path(__file__).resolve().parents[2] / "README.md"
S = staff_pb2
# employee number -> name, roles (the README's cast)
CAST = {
    "S0003": ("陈静", [S.ROLE_CLIENT_MANAGER]), "S0040": ("赵敏", [S.ROLE_CONSULTANT]),
    "S0017": ("刘洋", [S.ROLE_SERVICE_AGENT]), "S0025": ("Wang Bo", [S.ROLE_BROKER]),
    "S0050": ("孙丽", [S.ROLE_ANALYST]), "S0060": ("周强", [S.ROLE_COMPLIANCE]),
    "S0001": ("王芳", [S.ROLE_SUPERVISOR]),
}


def readme_lines() -> list[list[str]]:
    text = README.read_text()
    block = text.split("<!-- day-by-role: begin -->", 1)[1].split("<!-- day-by-role: end -->")[0]
    lines = [line for line in block.splitlines()
             if line.strip() and not line.startswith(("#", "```"))]
    return [shlex.split(line) for line in lines]


@pytest.fixture(scope="module")
async def branch(tmp_path_factory: pytest.TempPathFactory, nats_server: object
                 ) -> AsyncIterator[tuple[dict[str, ServiceRunner], dict[str, str]]]:
    nats_url = nats_server.url  # type: ignore[attr-defined]
    async with six_services(tmp_path_factory.mktemp("day"), nats_url) as runners, \
            channel(runners["directory"]) as ch:
        directory = DirectoryServiceStub(ch)
        tokens: dict[str, str] = {}
        ids: dict[str, str] = {}
        for number, (name, roles) in CAST.items():
            made = await directory.CreateStaff(dapi.CreateStaffRequest(staff=S.Staff(
                employee_no=number, display_name=name, roles=roles)), metadata=ADMIN)
            ids[number] = made.id
            tokens[number] = token(made.id, *(S.Role.Name(r).removeprefix("ROLE_").lower()
                                              for r in roles))
        await directory.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
            account_no="310000123456", display_name="张三", phone="13089384935",
            channel=client_pb2.CHANNEL_ONSITE, tier=client_pb2.TIER_KEY,
            risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2025-06-01",
            commission_rate="0.00025", broker_id=ids["S0025"],
            client_manager_id=ids["S0003"])), metadata=ADMIN)
        yield runners, tokens


def test_the_readme_block_names_no_uuid() -> None:
    lines = readme_lines()
    assert len(lines) >= 15 and all(line[0] == "branchctl" for line in lines)
    assert not [line for line in lines if UUID.search(" ".join(line))]
    assert {line[2] for line in lines} == set(CAST)  # every role has its part


async def test_a_day_per_role_typed_as_the_readme_shows(
        branch: tuple[dict[str, ServiceRunner], dict[str, str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runners, tokens = branch
    point_at(monkeypatch, runners, tmp_path)
    monkeypatch.setenv("LANG", "C.UTF-8")
    printed = []
    for line in readme_lines():
        profile = line[line.index("--profile") + 1]
        monkeypatch.setenv("BRANCH_TOKEN", tokens[profile])
        for attempt in range(50):  # a service learns a new client from the directory's events
            code, out = await asyncio.to_thread(run_main, line[1:])
            if code == 0 or "not known" not in out or attempt == 49:
                break
            await asyncio.sleep(0.1)
        assert code == 0, f"{shlex.join(line)}\n{out}"
        assert "Traceback" not in out
        printed.append(out)
    everything = "\n".join(printed)
    for name in ("张三", "陈静", "刘洋", "Wang Bo"):
        assert name in everything, name
    # the agent's call from 张三's number is identified as his
    tickets = printed[[" ".join(x) for x in readme_lines()].index(
        "branchctl --profile S0017 remote tickets --mine")]
    assert re.search(r"张三", tickets), tickets

"""Fixtures: a real directory and a real remote service (fake clock) on real NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.common.settings import Settings
from services.directory.server import SPEC as DIRECTORY
from services.remote.server import SPEC as REMOTE
from tests.harness import ADMIN, Metadata, auth, make_settings, running, unique

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceAsyncStub

# Monday 2 March 2026, 09:30 in Asia/Shanghai.
START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@dataclass
class Env:
    directory: ServiceRunner
    remote: ServiceRunner
    settings: Settings
    clock: FakeClock
    dir: DirectoryServiceAsyncStub
    stub: RemoteServiceAsyncStub
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    counter: int = 0

    async def staff(self, role: staff_pb2.Role.ValueType, team_lead_id: str = "") -> str:
        made = await self.dir.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
            employee_no=unique("E"), display_name="Staff", roles=[role],
            team_lead_id=team_lead_id)), metadata=ADMIN)
        return made.id

    async def agent(self, team_lead_id: str = "") -> tuple[str, Metadata]:
        sid = await self.staff(staff_pb2.ROLE_SERVICE_AGENT, team_lead_id)
        return sid, auth(sid, "service_agent")

    async def client(self, *, channel: int = client_pb2.CHANNEL_REMOTE,
                     tier: int = client_pb2.TIER_STANDARD, tolerance: int = 3,
                     opened_on: str = "2024-05-06") -> client_pb2.Client:
        return await self.dir.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
            account_no=unique("A"), display_name="Client", phone="13800000000",
            channel=client_pb2.Channel.ValueType(channel), tier=client_pb2.Tier.ValueType(tier),
            risk_tolerance=client_pb2.RiskTolerance.ValueType(tolerance),
            risk_assessed_on="2025-06-01", commission_rate="0.00025", opened_on=opened_on)),
            metadata=ADMIN)

    def remote_stub(self, runner: ServiceRunner) -> RemoteServiceAsyncStub:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{runner.port}")
        self.channels.append(ch)
        return RemoteServiceStub(ch)


@pytest.fixture
async def env(tmp_path: Path, nats_url: str) -> AsyncIterator[Env]:
    async with _env(tmp_path, nats_url, "") as e:
        yield e


@pytest.fixture
async def env_db(tmp_path: Path, nats_url: str, database_url: str) -> AsyncIterator[Env]:
    """Like env, once on SQLite and once on PostgreSQL when configured."""
    async with _env(tmp_path, nats_url, database_url) as e:
        yield e


class _env:
    def __init__(self, tmp_path: Path, nats_url: str, database_url: str) -> None:
        self.tmp, self.nats, self.url = tmp_path, nats_url, database_url

    async def __aenter__(self) -> Env:
        self.dir_cm = running(DIRECTORY, make_settings(self.tmp / "dir", self.nats,
                                                       self.url))
        directory = await self.dir_cm.__aenter__()
        settings = make_settings(self.tmp, self.nats, self.url,
                                 directory_addr=f"127.0.0.1:{directory.port}")
        clock = FakeClock(START)
        self.rem_cm = running(REMOTE, settings, clock=clock)
        remote = await self.rem_cm.__aenter__()
        dch = grpc.aio.insecure_channel(f"127.0.0.1:{directory.port}")
        rch = grpc.aio.insecure_channel(f"127.0.0.1:{remote.port}")
        self.env = Env(directory, remote, settings, clock, DirectoryServiceStub(dch),
                       RemoteServiceStub(rch), [dch, rch])
        return self.env

    async def __aexit__(self, *exc: object) -> None:
        for ch in self.env.channels:
            await ch.close()
        await self.rem_cm.__aexit__(None, None, None)
        await self.dir_cm.__aexit__(None, None, None)

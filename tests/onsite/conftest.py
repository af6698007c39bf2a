"""On-site tests run the real directory and the real on-site service, real NATS, real SQLite
(or PostgreSQL via database_url), with a FakeClock for the on-site service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceStub
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.directory.server import SPEC as DIRECTORY
from services.onsite.server import SPEC as ONSITE
from services.research.server import SPEC as RESEARCH
from tests.harness import ADMIN, Metadata, auth, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceAsyncStub
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

ROLE = {
    "client_manager": staff_pb2.ROLE_CLIENT_MANAGER,
    "consultant": staff_pb2.ROLE_CONSULTANT,
    "supervisor": staff_pb2.ROLE_SUPERVISOR,
    "analyst": staff_pb2.ROLE_ANALYST,
    "broker": staff_pb2.ROLE_BROKER,
}


@dataclass
class Stack:
    directory_runner: ServiceRunner
    runners: list[ServiceRunner]
    clock: FakeClock
    directory: DirectoryServiceAsyncStub
    onsite: OnsiteServiceAsyncStub
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    # Set when the stack runs the real research service too.
    research_runner: ServiceRunner | None = None
    research: ResearchServiceAsyncStub | None = None

    @property
    def runner(self) -> ServiceRunner:
        return self.runners[0]


@asynccontextmanager
async def make_stack(tmp: Path, nats_url: str, database_url: str = "",
                     replicas: int = 1, research: bool = False) -> AsyncIterator[Stack]:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    async with AsyncExitStack() as stack:
        dir_runner = await stack.enter_async_context(
            running(DIRECTORY, make_settings(tmp / "dir", nats_url, database_url)))
        addrs = {"directory_addr": f"127.0.0.1:{dir_runner.port}"}
        research_runner = None
        if research:
            research_runner = await stack.enter_async_context(running(
                RESEARCH, make_settings(tmp / "research", nats_url, database_url, **addrs),
                clock=clock))
            addrs["research_addr"] = f"127.0.0.1:{research_runner.port}"
        settings = make_settings(tmp / "onsite", nats_url, database_url, **addrs)
        runners = [await stack.enter_async_context(running(ONSITE, settings, clock=clock))
                   for _ in range(replicas)]
        dch = grpc.aio.insecure_channel(f"127.0.0.1:{dir_runner.port}")
        och = grpc.aio.insecure_channel(f"127.0.0.1:{runners[0].port}")
        stack.push_async_callback(dch.close)
        stack.push_async_callback(och.close)
        out = Stack(dir_runner, runners, clock, DirectoryServiceStub(dch),
                    OnsiteServiceStub(och), [dch, och])
        if research_runner is not None:
            rch = grpc.aio.insecure_channel(f"127.0.0.1:{research_runner.port}")
            stack.push_async_callback(rch.close)
            out.research_runner, out.research = research_runner, ResearchServiceStub(rch)
            out.channels.append(rch)
        yield out


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, nats_server: Any) -> AsyncIterator[Stack]:
    async with make_stack(tmp_path_factory.mktemp("onsite"), nats_server.url) as s:
        yield s


@pytest.fixture
async def db_stack(tmp_path: Path, nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    """A fresh stack per test on SQLite and, when configured, PostgreSQL."""
    async with make_stack(tmp_path, nats_url, database_url) as s:
        yield s


@dataclass
class World:
    """Staff and clients made in the directory for one test."""

    s: Stack
    cm1: str
    cm2: str
    cons1: str
    cons2: str
    sup: str
    analyst: str
    # on-site, cm1, C3, with holdings
    client_a: str
    # on-site, cm2, C5
    client_b: str
    # remote, cm1
    client_r: str
    # on-site, cm1, C4 but the assessment is older than two years
    client_old: str

    def md(self, staff_id: str, role: str) -> Metadata:
        return auth(staff_id, role)

    @property
    def as_cm1(self) -> Metadata:
        return auth(self.cm1, "client_manager")

    @property
    def as_cm2(self) -> Metadata:
        return auth(self.cm2, "client_manager")

    @property
    def as_cons1(self) -> Metadata:
        return auth(self.cons1, "consultant")

    @property
    def as_cons2(self) -> Metadata:
        return auth(self.cons2, "consultant")

    @property
    def as_sup(self) -> Metadata:
        return auth(self.sup, "supervisor")


async def make_staff(d: DirectoryServiceAsyncStub, *roles: str) -> str:
    staff = await d.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no="E" + uuid.uuid4().hex[:10], display_name="Staff",
        roles=[ROLE[r] for r in roles])), metadata=ADMIN)
    return staff.id


async def make_client(d: DirectoryServiceAsyncStub, **fields: Any) -> str:
    defaults: dict[str, Any] = dict(
        account_no="A" + uuid.uuid4().hex[:12], display_name="Client",
        channel=client_pb2.CHANNEL_ONSITE, risk_tolerance=client_pb2.RISK_TOLERANCE_C3,
        risk_assessed_on=(datetime.now(UTC).date() - timedelta(days=100)).isoformat(),
        commission_rate="0.00025",
    )
    defaults.update(fields)
    client = await d.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(**defaults)),
                                  metadata=ADMIN)
    return client.id


async def import_holdings(d: DirectoryServiceAsyncStub, client_id: str,
                          positions: list[tuple[str, int, str, str]]) -> None:
    """positions: (ticker, quantity, cost price, market price)."""
    today = datetime.now(UTC).date().isoformat()

    async def records() -> AsyncIterator[dapi.ImportTradesRequest]:
        for ticker, qty, cost, market in positions:
            yield dapi.ImportTradesRequest(security=holding_pb2.Security(
                ticker=ticker, name=ticker, risk_level=client_pb2.RISK_LEVEL_R3,
                last_price=market))
            yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
                client_id=client_id, ticker=ticker, quantity=qty, cost_price=cost,
                market_price=market, as_of=today))

    result = await d.ImportTrades(records(), metadata=ADMIN)
    assert result.rejected == 0, result


async def make_world(s: Stack) -> World:
    d = s.directory
    cm1 = await make_staff(d, "client_manager")
    cm2 = await make_staff(d, "client_manager")
    cons1 = await make_staff(d, "consultant")
    cons2 = await make_staff(d, "consultant")
    sup = await make_staff(d, "supervisor")
    analyst = await make_staff(d, "analyst")
    client_a = await make_client(d, client_manager_id=cm1)
    client_b = await make_client(d, client_manager_id=cm2,
                                 risk_tolerance=client_pb2.RISK_TOLERANCE_C5)
    client_r = await make_client(d, client_manager_id=cm1, channel=client_pb2.CHANNEL_REMOTE)
    old = (datetime.now(UTC).date() - timedelta(days=800)).isoformat()
    client_old = await make_client(d, client_manager_id=cm1,
                                   risk_tolerance=client_pb2.RISK_TOLERANCE_C4,
                                   risk_assessed_on=old)
    await import_holdings(d, client_a, [("600519", 100, "1650.00", "1702.50"),
                                        ("000001", 2000, "11.20", "")])
    return World(s, cm1, cm2, cons1, cons2, sup, analyst, client_a, client_b, client_r,
                 client_old)


@pytest.fixture
async def world(stack: Stack) -> World:
    return await make_world(stack)


@pytest.fixture
async def db_world(db_stack: Stack) -> World:
    return await make_world(db_stack)

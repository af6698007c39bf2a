"""Test support for vip and the cross-service flows: a fresh NATS per test (durable consumers
are then never shared between tests), the real directory, factories, and an event publisher
that stands in for a service not under test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import nats
from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.directory.v1 import directory_service_pb2_grpc as dir_grpc
from branch.vip.v1 import rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from branch.vip.v1 import vip_service_pb2_grpc as vip_grpc
from google.protobuf.message import Message

from services.common.clock import FakeClock
from services.common.ids import new_id
from services.common.nats_link import EmbeddedNats
from services.common.server import ServiceRunner, ServiceSpec
from services.common.settings import Settings
from services.directory.server import SPEC as DIRECTORY
from services.vip.config import VipConfig
from services.vip.server import SPEC as VIP
from tests.harness import ADMIN, SUPERVISOR, Metadata, auth, eventually, make_settings, running

START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@asynccontextmanager
async def fresh_nats(tmp_path: Path) -> AsyncIterator[str]:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def publish(nats_url: str, subject: str, message: Message, *, event_id: str = "",
                  msg_id: str = "", source: str = "/branch/test",
                  time: datetime | None = None) -> str:
    """Publish a CloudEvent as a service's outbox relay would. msg_id differs from the event
    id to get past JetStream's duplicate window and force a consumer-side redelivery."""
    event_id = event_id or new_id()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.publish(subject, message.SerializeToString(), headers={
            "Nats-Msg-Id": msg_id or event_id,
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-type": subject,
            "ce-source": source,
            "ce-time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
            "ce-subject": "",
            "ce-dataschema": message.DESCRIPTOR.full_name,
        })
    finally:
        await nc.close()
    return event_id


@dataclass
class Branch:
    """The services under test and factories that go through their public APIs."""

    nats_url: str
    clock: FakeClock
    runners: dict[str, ServiceRunner]
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    counter: int = 0

    @property
    def directory(self) -> dir_grpc.DirectoryServiceAsyncStub:
        return dir_grpc.DirectoryServiceStub(self.channels["directory"])

    @property
    def vip(self) -> vip_grpc.VipServiceAsyncStub:
        return vip_grpc.VipServiceStub(self.channels["vip"])

    def _n(self) -> int:
        self.counter += 1
        return self.counter

    async def staff(self, role: staff_pb2.Role.ValueType, team_lead_id: str = "") -> str:
        n = self._n()
        out = await self.directory.CreateStaff(dir_api.CreateStaffRequest(
            staff=staff_pb2.Staff(employee_no=f"E{n:05d}", display_name=f"Staff {n}",
                                  roles=[role], team_lead_id=team_lead_id)), metadata=ADMIN)
        return out.id

    async def client(self, *, broker_id: str = "", tier: int = client_pb2.TIER_KEY,
                     tolerance: int = client_pb2.RISK_TOLERANCE_C3,
                     assessed_on: str = "2026-01-05",
                     channel: int = client_pb2.CHANNEL_REMOTE) -> str:
        n = self._n()
        out = await self.directory.CreateClient(dir_api.CreateClientRequest(
            client=client_pb2.Client(
                account_no=f"A{n:07d}", display_name=f"Client {n}", channel=client_pb2.Channel.ValueType(channel),
                tier=client_pb2.Tier.ValueType(tier), risk_tolerance=client_pb2.RiskTolerance.ValueType(tolerance), risk_assessed_on=assessed_on,
                commission_rate="0.0005", broker_id=broker_id)), metadata=ADMIN)
        return out.id

    async def on_roster(self, client_id: str) -> Any:
        async def check() -> Any:
            try:
                entry = await self.vip.GetRosterEntry(
                    api.GetRosterEntryRequest(client_id=client_id), metadata=SUPERVISOR)
            except grpc.aio.AioRpcError:
                return None
            return entry
        return await eventually(check)

    async def key_client(self, broker_id: str, **kw: Any) -> str:
        client_id = await self.client(broker_id=broker_id, **kw)
        await self.on_roster(client_id)
        return client_id

    async def holdings(self, pairs: list[tuple[str, str]], as_of: str = "2026-02-27") -> None:
        tickers = sorted({t for _, t in pairs})

        async def records() -> AsyncIterator[dir_api.ImportTradesRequest]:
            for t in tickers:
                yield dir_api.ImportTradesRequest(security=holding_pb2.Security(
                    ticker=t, name=t, risk_level=client_pb2.RISK_LEVEL_R3))
            for client_id, t in pairs:
                yield dir_api.ImportTradesRequest(holding=dir_api.HoldingSnapshot(
                    client_id=client_id, ticker=t, quantity=100, cost_price="10.00",
                    as_of=as_of))

        result = await self.directory.ImportTrades(records(), metadata=ADMIN)
        assert result.rejected == 0, result.rejections

    async def shift(self, staff_id: str, start: datetime, end: datetime,
                    role: int = rota_pb2.SHIFT_ROLE_BROKER) -> rota_pb2.Shift:
        return await self.vip.CreateShift(api.CreateShiftRequest(shift=rota_pb2.Shift(
            staff_id=staff_id, role=rota_pb2.ShiftRole.ValueType(role), start_time=_ts(start), end_time=_ts(end))),
            metadata=SUPERVISOR)

    async def inbox(self, broker_id: str) -> api.GetInboxResponse:
        return await self.vip.GetInbox(api.GetInboxRequest(), metadata=broker(broker_id))

    async def idle(self, service: str = "vip") -> None:
        """Let the outbox flush and consumers catch up a little."""
        await self.runners[service].relay.flush_once()
        await asyncio.sleep(0.05)


def _ts(value: datetime) -> Any:
    from services.common.protos import ts

    return ts(value)


def broker(staff_id: str) -> Metadata:
    return auth(staff_id, "broker")


@asynccontextmanager
async def running_vip(settings: Settings, *, clock: FakeClock, run_consumers: bool = True,
                      config: VipConfig | None = None) -> AsyncIterator[ServiceRunner]:
    """vip with its background SLA loop effectively off: tests run the timer passes
    themselves after moving the fake clock, so a slow machine never races them."""
    runner = ServiceRunner(VIP, settings, clock=clock, port=0, run_consumers=run_consumers)
    runner.ctx.extras["vip_config"] = config or VipConfig(check_seconds=3600)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop(grace=1)


@asynccontextmanager
async def branch(tmp_path: Path, *specs: ServiceSpec, database_url: str = "",
                 clock: FakeClock | None = None, timezone: str = "Asia/Shanghai",
                 nats_url: str = "", vip_config: VipConfig | None = None,
                 ) -> AsyncIterator[Branch]:
    """Start the directory, vip and any other specs against one (fresh) NATS server."""
    clock = clock or FakeClock(START)
    async with AsyncExitStack() as stack:
        url = nats_url or await stack.enter_async_context(fresh_nats(tmp_path))
        runners: dict[str, ServiceRunner] = {}
        settings = make_settings(tmp_path, url, database_url, timezone=timezone)
        d = await stack.enter_async_context(running(DIRECTORY, settings, clock=clock))
        runners["directory"] = d
        addrs = {"directory_addr": f"127.0.0.1:{d.port}"}
        for spec in (*specs, VIP):
            if spec.name in runners:
                continue
            settings = make_settings(tmp_path, url, database_url, timezone=timezone, **addrs)
            if spec is VIP:
                r = await stack.enter_async_context(running_vip(settings, clock=clock,
                                                                     config=vip_config))
            else:
                r = await stack.enter_async_context(running(spec, settings, clock=clock))
            runners[spec.name] = r
            addrs[f"{spec.name}_addr"] = f"127.0.0.1:{r.port}"
        b = Branch(nats_url=url, clock=clock, runners=runners)
        for name, r in runners.items():
            b.channels[name] = grpc.aio.insecure_channel(f"127.0.0.1:{r.port}")
        try:
            yield b
        finally:
            for ch in b.channels.values():
                await ch.close()


ROLE = staff_pb2
DAY = timedelta(days=1)

"""Clients of the deployed suite: stubs over every replica of a service and factories that
go through the public APIs, shared by the flow and replay tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.directory.v1 import directory_service_pb2_grpc as dir_grpc
from branch.remote.v1 import remote_service_pb2_grpc as remote_grpc
from branch.research.v1 import research_service_pb2_grpc as research_grpc
from branch.vip.v1 import vip_service_pb2_grpc as vip_grpc

from tests.deploy.cluster import Cluster
from tests.harness import ADMIN, SUPERVISOR, Metadata, auth, eventually, unique

ANALYST = auth("ana-deploy", "analyst")
COMPLIANCE = auth("comp-deploy", "compliance")


def broker(staff_id: str) -> Metadata:
    return auth(staff_id, "broker")


def today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def ts(when: datetime) -> Any:
    from services.common.protos import ts as to_ts

    return to_ts(when)


# A client of a replicated service retries a call that found a replica gone (UNAVAILABLE).
CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps({"methodConfig": [{
        "name": [{}],
        "retryPolicy": {
            "maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "2s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]})),
]


class Suite:
    """Stubs over every replica of each service (round robin, as a client of a Kubernetes
    Service whose connections land on different pods) and factories through the APIs."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.channels = {
            name: cluster.dial(cluster.client_target(name), name, options=CHANNEL_OPTIONS)
            for name in cluster.replicas
        }

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()

    @property
    def directory(self) -> dir_grpc.DirectoryServiceAsyncStub:
        return dir_grpc.DirectoryServiceStub(self.channels["directory"])

    @property
    def research(self) -> research_grpc.ResearchServiceAsyncStub:
        return research_grpc.ResearchServiceStub(self.channels["research"])

    @property
    def vip(self) -> vip_grpc.VipServiceAsyncStub:
        return vip_grpc.VipServiceStub(self.channels["vip"])

    @property
    def remote(self) -> remote_grpc.RemoteServiceAsyncStub:
        return remote_grpc.RemoteServiceStub(self.channels["remote"])

    async def staff(self, role: staff_pb2.Role.ValueType) -> str:
        out = await self.directory.CreateStaff(dir_api.CreateStaffRequest(
            staff=staff_pb2.Staff(employee_no=unique("E"), display_name="Staff",
                                  roles=[role])), metadata=ADMIN)
        return out.id

    async def client(self, *, broker_id: str,
                     tier: client_pb2.Tier.ValueType = client_pb2.TIER_KEY,
                     tolerance: client_pb2.RiskTolerance.ValueType = client_pb2.RISK_TOLERANCE_C4
                     ) -> str:
        out = await self.directory.CreateClient(dir_api.CreateClientRequest(
            client=client_pb2.Client(
                account_no=unique("A"), display_name="Client", channel=client_pb2.CHANNEL_REMOTE,
                tier=tier, risk_tolerance=tolerance, risk_assessed_on="2026-01-05",
                commission_rate="0.0005", broker_id=broker_id),
            request_id=unique("rq-")), metadata=ADMIN)
        return out.id

    async def on_roster(self, client_id: str, timeout: float = 30) -> Any:
        from branch.vip.v1 import vip_service_pb2 as vip

        async def check() -> Any:
            try:
                return await self.vip.GetRosterEntry(
                    vip.GetRosterEntryRequest(client_id=client_id), metadata=SUPERVISOR)
            except grpc.aio.AioRpcError:
                return None

        return await eventually(check, timeout=timeout)

    async def on_shift(self, staff_id: str) -> None:
        from branch.vip.v1 import rota_pb2
        from branch.vip.v1 import vip_service_pb2 as vip

        now = datetime.now(UTC)
        await self.vip.CreateShift(vip.CreateShiftRequest(shift=rota_pb2.Shift(
            staff_id=staff_id, role=rota_pb2.SHIFT_ROLE_BROKER,
            start_time=ts(now - timedelta(hours=1)), end_time=ts(now + timedelta(hours=7)))),
            metadata=SUPERVISOR)

    async def holdings(self, pairs: list[tuple[str, str]]) -> None:
        tickers = sorted({t for _, t in pairs})

        async def records() -> AsyncIterator[dir_api.ImportTradesRequest]:
            for t in tickers:
                yield dir_api.ImportTradesRequest(security=holding_pb2.Security(
                    ticker=t, name=t, risk_level=client_pb2.RISK_LEVEL_R3))
            for client_id, t in pairs:
                yield dir_api.ImportTradesRequest(holding=dir_api.HoldingSnapshot(
                    client_id=client_id, ticker=t, quantity=100, cost_price="10.00",
                    as_of=(today() - timedelta(days=1)).isoformat()))

        result = await self.directory.ImportTrades(records(), metadata=ADMIN)
        assert result.rejected == 0, result.rejections

    async def publish_note(self, *tickers: str) -> Any:
        from branch.research.v1 import note_enums_pb2 as enums
        from branch.research.v1 import note_pb2
        from branch.research.v1 import research_service_pb2 as rapi

        stub = self.research
        note = await stub.CreateNote(rapi.CreateNoteRequest(note=note_pb2.Note(
            title="Margins hold", summary="Pricing power intact.", body="# Thesis\n\nSteady.",
            kind=enums.NOTE_KIND_STOCK,
            stances=[enums.TickerStance(ticker=t, stance=enums.STANCE_BUY) for t in tickers],
            risk_level=client_pb2.RISK_LEVEL_R3,
            valid_until=(today() + timedelta(days=60)).isoformat(),
            audience=enums.AUDIENCE_ALL_CLIENTS)), metadata=ANALYST)
        await stub.SubmitNote(rapi.SubmitNoteRequest(id=note.id), metadata=ANALYST)
        await stub.ApproveNote(rapi.ApproveNoteRequest(id=note.id, revision=note.revision),
                               metadata=COMPLIANCE)
        return await stub.PublishNote(rapi.PublishNoteRequest(id=note.id), metadata=ANALYST)

"""Thin gRPC adapter: request -> area call -> response."""

from __future__ import annotations

from typing import Any

import grpc
from branch.vip.v1 import advisory_pb2, relay_pb2, roster_pb2, rota_pb2, vip_service_pb2
from branch.vip.v1 import vip_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.vip import advisory, relay, roster, rota, views
from services.vip.core import Vip


class VipServicer(grpc_api.VipServiceServicer):
    def __init__(self, vip: Vip) -> None:
        self.vip = vip

    # roster
    async def GetRosterEntry(
        self,
        request: vip_service_pb2.GetRosterEntryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> roster_pb2.RosterEntry:
        return await roster.get_entry(self.vip, current_principal(), request.client_id)

    async def ListRoster(
        self,
        request: vip_service_pb2.ListRosterRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.ListRosterResponse:
        return await roster.list_entries(self.vip, current_principal(), request)

    async def UpdateRosterEntry(
        self,
        request: vip_service_pb2.UpdateRosterEntryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> roster_pb2.RosterEntry:
        return await roster.update_entry(self.vip, request)

    # rota
    async def CreateShift(
        self,
        request: vip_service_pb2.CreateShiftRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> rota_pb2.Shift:
        principal = current_principal()
        return await idempotency.once(
            self.vip.db, self.vip.clock, method="CreateShift", request_id=request.request_id,
            response_type=rota_pb2.Shift,
            create=lambda s: rota.create_shift(self.vip, s, principal, request.shift),
        )

    async def ListShifts(
        self,
        request: vip_service_pb2.ListShiftsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.ListShiftsResponse:
        return await rota.list_shifts(self.vip, request)

    async def DeleteShift(
        self,
        request: vip_service_pb2.DeleteShiftRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.DeleteShiftResponse:
        return await rota.delete_shift(self.vip, request.id)

    async def GetOnCall(
        self, request: vip_service_pb2.GetOnCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> vip_service_pb2.GetOnCallResponse:
        return await rota.get_on_call(self.vip, request)

    async def CheckRotaGaps(
        self,
        request: vip_service_pb2.CheckRotaGapsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.CheckRotaGapsResponse:
        return await rota.check_gaps(self.vip, request)

    # advisories
    async def CreateAdvisory(
        self,
        request: vip_service_pb2.CreateAdvisoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> advisory_pb2.Advisory:
        principal = current_principal()
        return await idempotency.once(
            self.vip.db, self.vip.clock, method="CreateAdvisory", request_id=request.request_id,
            response_type=advisory_pb2.Advisory,
            create=lambda s: advisory.create(self.vip, s, principal, request.advisory),
        )

    async def GetAdvisory(
        self,
        request: vip_service_pb2.GetAdvisoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> advisory_pb2.Advisory:
        return await advisory.get(self.vip, current_principal(), request.id)

    async def ListAdvisories(
        self,
        request: vip_service_pb2.ListAdvisoriesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.ListAdvisoriesResponse:
        return await advisory.list_(self.vip, current_principal(), request)

    async def AcknowledgeAdvisory(
        self,
        request: vip_service_pb2.AcknowledgeAdvisoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> advisory_pb2.Advisory:
        return await advisory.acknowledge(self.vip, current_principal(), request.id)

    async def RequestAdvisoryResearch(
        self,
        request: vip_service_pb2.RequestAdvisoryResearchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> advisory_pb2.Advisory:
        return await advisory.request_research(self.vip, current_principal(), request)

    async def AnswerAdvisory(
        self,
        request: vip_service_pb2.AnswerAdvisoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> advisory_pb2.Advisory:
        return await advisory.answer(self.vip, current_principal(), request)

    async def CloseAdvisory(
        self,
        request: vip_service_pb2.CloseAdvisoryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> advisory_pb2.Advisory:
        return await advisory.close(self.vip, current_principal(), request)

    # relays
    async def GetRelay(
        self, request: vip_service_pb2.GetRelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> relay_pb2.RelayTask:
        return await relay.get(self.vip, current_principal(), request.id)

    async def ListRelays(
        self,
        request: vip_service_pb2.ListRelaysRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.ListRelaysResponse:
        return await relay.list_(self.vip, current_principal(), request)

    async def RecordRelayDelivery(
        self,
        request: vip_service_pb2.RecordRelayDeliveryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> relay_pb2.RelayTask:
        return await relay.record_delivery(self.vip, current_principal(), request)

    async def RecordRelayAcknowledgement(
        self,
        request: vip_service_pb2.RecordRelayAcknowledgementRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> relay_pb2.RelayTask:
        return await relay.record_acknowledgement(self.vip, current_principal(), request)

    # views
    async def GetInbox(
        self, request: vip_service_pb2.GetInboxRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> vip_service_pb2.GetInboxResponse:
        return await views.inbox(self.vip, current_principal(), request)

    async def GetSlaReport(
        self,
        request: vip_service_pb2.GetSlaReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.GetSlaReportResponse:
        return await views.sla_report(self.vip, request)

    async def ListBreaches(
        self,
        request: vip_service_pb2.ListBreachesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> vip_service_pb2.ListBreachesResponse:
        return await views.breaches(self.vip, request)


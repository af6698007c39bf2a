"""Thin gRPC adapter: request -> area call -> response."""

from __future__ import annotations

from branch.vip.v1 import advisory_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.vip import advisory, relay, roster, rota, views
from services.vip.core import Vip


class VipServicer(grpc_api.VipServiceServicer):
    def __init__(self, vip: Vip) -> None:
        self.vip = vip

    # roster
    async def GetRosterEntry(self, request, context):  # type: ignore[no-untyped-def]
        return await roster.get_entry(self.vip, current_principal(), request.client_id)

    async def ListRoster(self, request, context):  # type: ignore[no-untyped-def]
        return await roster.list_entries(self.vip, current_principal(), request)

    async def UpdateRosterEntry(self, request, context):  # type: ignore[no-untyped-def]
        return await roster.update_entry(self.vip, request)

    # rota
    async def CreateShift(self, request, context):  # type: ignore[no-untyped-def]
        principal = current_principal()
        return await idempotency.once(
            self.vip.db, self.vip.clock, method="CreateShift", request_id=request.request_id,
            response_type=rota_pb2.Shift,
            create=lambda s: rota.create_shift(self.vip, s, principal, request.shift),
        )

    async def ListShifts(self, request, context):  # type: ignore[no-untyped-def]
        return await rota.list_shifts(self.vip, request)

    async def DeleteShift(self, request, context):  # type: ignore[no-untyped-def]
        return await rota.delete_shift(self.vip, request.id)

    async def GetOnCall(self, request, context):  # type: ignore[no-untyped-def]
        return await rota.get_on_call(self.vip, request)

    async def CheckRotaGaps(self, request, context):  # type: ignore[no-untyped-def]
        return await rota.check_gaps(self.vip, request)

    # advisories
    async def CreateAdvisory(self, request, context):  # type: ignore[no-untyped-def]
        principal = current_principal()
        return await idempotency.once(
            self.vip.db, self.vip.clock, method="CreateAdvisory", request_id=request.request_id,
            response_type=advisory_pb2.Advisory,
            create=lambda s: advisory.create(self.vip, s, principal, request.advisory),
        )

    async def GetAdvisory(self, request, context):  # type: ignore[no-untyped-def]
        return await advisory.get(self.vip, current_principal(), request.id)

    async def ListAdvisories(self, request, context):  # type: ignore[no-untyped-def]
        return await advisory.list_(self.vip, current_principal(), request)

    async def AcknowledgeAdvisory(self, request, context):  # type: ignore[no-untyped-def]
        return await advisory.acknowledge(self.vip, current_principal(), request.id)

    async def RequestAdvisoryResearch(self, request, context):  # type: ignore[no-untyped-def]
        return await advisory.request_research(self.vip, current_principal(), request)

    async def AnswerAdvisory(self, request, context):  # type: ignore[no-untyped-def]
        return await advisory.answer(self.vip, current_principal(), request)

    async def CloseAdvisory(self, request, context):  # type: ignore[no-untyped-def]
        return await advisory.close(self.vip, current_principal(), request)

    # relays
    async def GetRelay(self, request, context):  # type: ignore[no-untyped-def]
        return await relay.get(self.vip, current_principal(), request.id)

    async def ListRelays(self, request, context):  # type: ignore[no-untyped-def]
        return await relay.list_(self.vip, current_principal(), request)

    async def RecordRelayDelivery(self, request, context):  # type: ignore[no-untyped-def]
        return await relay.record_delivery(self.vip, current_principal(), request)

    async def RecordRelayAcknowledgement(self, request, context):  # type: ignore[no-untyped-def]
        return await relay.record_acknowledgement(self.vip, current_principal(), request)

    # views
    async def GetInbox(self, request, context):  # type: ignore[no-untyped-def]
        return await views.inbox(self.vip, current_principal(), request)

    async def GetSlaReport(self, request, context):  # type: ignore[no-untyped-def]
        return await views.sla_report(self.vip, request)

    async def ListBreaches(self, request, context):  # type: ignore[no-untyped-def]
        return await views.breaches(self.vip, request)


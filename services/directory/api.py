"""Thin gRPC adapter: request -> Directory call -> response."""

from __future__ import annotations

from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import directory_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.common.errors import InvalidArgument
from services.common.protos import from_ts
from services.directory import calendar_days, search
from services.directory.imports import import_stream
from services.directory.service import Directory


class DirectoryServicer(grpc_api.DirectoryServiceServicer):
    def __init__(self, directory: Directory) -> None:
        self.d = directory

    async def CreateStaff(self, request, context):  # type: ignore[no-untyped-def]
        return await idempotency.once(
            self.d.db, self.d.clock, method="CreateStaff", request_id=request.request_id,
            response_type=staff_pb2.Staff,
            create=lambda s: self.d.create_staff(s, request.staff),
        )

    async def GetStaff(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.get_staff(request.id)

    async def ListStaff(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.list_staff(request)

    async def DeactivateStaff(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.deactivate_staff(request.id)

    async def IssueToken(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.issue_token(request)

    async def CreateClient(self, request, context):  # type: ignore[no-untyped-def]
        principal = current_principal()
        return await idempotency.once(
            self.d.db, self.d.clock, method="CreateClient", request_id=request.request_id,
            response_type=client_pb2.Client,
            create=lambda s: self.d.create_client(s, principal, request.client),
        )

    async def GetClient(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.get_client(current_principal(), request.id)

    async def ListClients(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.list_clients(current_principal(), request)

    async def UpdateClient(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.update_client(
            current_principal(), request.client, list(request.update_mask.paths)
        )

    async def ChangeClientTier(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.change_tier(request)

    async def AssignClientStaff(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.assign_staff(request)

    async def ImportTrades(self, request_iterator, context):  # type: ignore[no-untyped-def]
        result = await import_stream(self.d.db, self.d.clock, request_iterator)
        return result.to_proto()

    async def ListHoldings(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.list_holdings(current_principal(), request.client_id)

    async def StreamTrades(self, request, context):  # type: ignore[no-untyped-def]
        start, end = from_ts(request.start_time), from_ts(request.end_time)
        if start and end and end <= start:
            raise InvalidArgument({"end_time": "must be after start_time"})
        async for batch in self.d.stream_trades(current_principal(), request, start, end):
            yield batch

    async def ListSecurities(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.list_securities(request)

    async def FindClientsByTickers(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.find_clients_by_tickers(request)

    async def ListCorporateActions(self, request, context):  # type: ignore[no-untyped-def]
        return await self.d.list_corporate_actions(current_principal(), request)

    async def SetCalendarDay(self, request, context):  # type: ignore[no-untyped-def]
        return await calendar_days.set_day(self.d.db, self.d.clock, current_principal(),
                                           request.day)

    async def DeleteCalendarDay(self, request, context):  # type: ignore[no-untyped-def]
        return await calendar_days.delete_day(self.d.db, self.d.clock, current_principal(),
                                              request)

    async def ListCalendarDays(self, request, context):  # type: ignore[no-untyped-def]
        return await calendar_days.list_days(self.d.db, request)

    async def SearchClients(self, request, context):  # type: ignore[no-untyped-def]
        return await search.search_clients(self.d.db, current_principal(), request)

    async def SearchStaff(self, request, context):  # type: ignore[no-untyped-def]
        return await search.search_staff(self.d.db, request)


__all__ = ["DirectoryServicer", "api"]

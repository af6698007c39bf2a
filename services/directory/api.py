"""Thin gRPC adapter: request -> Directory call -> response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from branch.directory.v1 import (
    calendar_pb2,
    client_pb2,
    corporate_action_pb2,
    directory_service_pb2,
    search_pb2,
    staff_pb2,
)
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

    async def CreateStaff(
        self,
        request: directory_service_pb2.CreateStaffRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> staff_pb2.Staff:
        return await idempotency.once(
            self.d.db, self.d.clock, method="CreateStaff", request_id=request.request_id,
            response_type=staff_pb2.Staff,
            create=lambda s: self.d.create_staff(s, request.staff),
        )

    async def GetStaff(
        self,
        request: directory_service_pb2.GetStaffRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> staff_pb2.Staff:
        return await self.d.get_staff(request.id)

    async def ListStaff(
        self,
        request: directory_service_pb2.ListStaffRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.ListStaffResponse:
        return await self.d.list_staff(request)

    async def DeactivateStaff(
        self,
        request: directory_service_pb2.DeactivateStaffRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> staff_pb2.Staff:
        return await self.d.deactivate_staff(request.id)

    async def IssueToken(
        self,
        request: directory_service_pb2.IssueTokenRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.IssueTokenResponse:
        return await self.d.issue_token(request)

    async def CreateClient(
        self,
        request: directory_service_pb2.CreateClientRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> client_pb2.Client:
        return await idempotency.once_in(
            self.d.db, self.d.clock, method="CreateClient", request_id=request.request_id,
            response_type=client_pb2.Client,
            create=lambda w: self.d.create_client(w, request.client),
            explain=lambda: self.d.explain_client_conflict(request.client),
        )

    async def GetClient(
        self,
        request: directory_service_pb2.GetClientRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> client_pb2.Client:
        return await self.d.get_client(current_principal(), request.id)

    async def ListClients(
        self,
        request: directory_service_pb2.ListClientsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.ListClientsResponse:
        return await self.d.list_clients(current_principal(), request)

    async def UpdateClient(
        self,
        request: directory_service_pb2.UpdateClientRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> client_pb2.Client:
        return await self.d.update_client(
            current_principal(), request.client, list(request.update_mask.paths)
        )

    async def ChangeClientTier(
        self,
        request: directory_service_pb2.ChangeClientTierRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> client_pb2.Client:
        return await self.d.change_tier(request)

    async def AssignClientStaff(
        self,
        request: directory_service_pb2.AssignClientStaffRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> client_pb2.Client:
        return await self.d.assign_staff(request)

    async def ImportTrades(
        self,
        request_iterator: AsyncIterator[directory_service_pb2.ImportTradesRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.ImportTradesResponse:
        result = await import_stream(self.d.db, self.d.clock, request_iterator)
        return result.to_proto()

    async def ListHoldings(
        self,
        request: directory_service_pb2.ListHoldingsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.ListHoldingsResponse:
        return await self.d.list_holdings(current_principal(), request.client_id)

    async def StreamTrades(
        self,
        request: directory_service_pb2.StreamTradesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[directory_service_pb2.StreamTradesResponse]:
        start, end = from_ts(request.start_time), from_ts(request.end_time)
        if start and end and end <= start:
            raise InvalidArgument({"end_time": "must be after start_time"})
        async for batch in self.d.stream_trades(current_principal(), request, start, end):
            yield batch

    async def ListSecurities(
        self,
        request: directory_service_pb2.ListSecuritiesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.ListSecuritiesResponse:
        return await self.d.list_securities(request)

    async def FindClientsByTickers(
        self,
        request: directory_service_pb2.FindClientsByTickersRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> directory_service_pb2.FindClientsByTickersResponse:
        return await self.d.find_clients_by_tickers(request)

    async def ListCorporateActions(
        self,
        request: corporate_action_pb2.ListCorporateActionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> corporate_action_pb2.ListCorporateActionsResponse:
        return await self.d.list_corporate_actions(current_principal(), request)

    async def SetCalendarDay(
        self,
        request: calendar_pb2.SetCalendarDayRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> calendar_pb2.CalendarDay:
        return await calendar_days.set_day(self.d.db, self.d.clock, current_principal(),
                                           request.day)

    async def DeleteCalendarDay(
        self,
        request: calendar_pb2.DeleteCalendarDayRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> calendar_pb2.DeleteCalendarDayResponse:
        return await calendar_days.delete_day(self.d.db, self.d.clock, current_principal(),
                                              request)

    async def ListCalendarDays(
        self,
        request: calendar_pb2.ListCalendarDaysRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> calendar_pb2.ListCalendarDaysResponse:
        return await calendar_days.list_days(self.d.db, request)

    async def SearchClients(
        self, request: search_pb2.SearchClientsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> search_pb2.SearchClientsResponse:
        return await search.search_clients(self.d.db, current_principal(), request)

    async def SearchStaff(
        self, request: search_pb2.SearchStaffRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> search_pb2.SearchStaffResponse:
        return await search.search_staff(self.d.db, request)


__all__ = ["DirectoryServicer", "api"]

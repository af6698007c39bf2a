"""Thin gRPC adapter: request -> domain call -> response."""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from branch.remote.v1 import campaign_pb2, remote_service_pb2, report_pb2, ticket_pb2
from branch.remote.v1 import remote_service_pb2_grpc as grpc_api
from google.protobuf.message import Message

from services.common import idempotency
from services.common.auth import current_principal
from services.common.errors import InvalidArgument, Msg
from services.remote.campaigns import Campaigns
from services.remote.reports import Reports
from services.remote.stats import Statistics
from services.remote.tickets import Tickets

M = TypeVar("M", bound=Message)


async def _replayed(
    svc: Campaigns | Reports | Tickets, method: str, request_id: str, response_type: type[M]
) -> M | None:
    """A retried create answers before the directory is asked anything again."""
    if not request_id:
        return None
    if len(request_id) > idempotency.MAX_REQUEST_ID:
        raise InvalidArgument({"request_id": Msg("at most {max_request_id} characters",
                                                 max_request_id=idempotency.MAX_REQUEST_ID)})
    return await idempotency._stored(svc.core.db, current_principal().staff_id, method,
                                     request_id, response_type)


class RemoteServicer(grpc_api.RemoteServiceServicer):
    def __init__(self, campaigns: Campaigns, reports: Reports, tickets: Tickets,
                 stats: Statistics) -> None:
        self.c, self.r, self.t, self.s = campaigns, reports, tickets, stats
        self.db, self.clock = campaigns.core.db, campaigns.core.clock

    # campaigns
    async def CreateCampaign(
        self,
        request: remote_service_pb2.CreateCampaignRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> campaign_pb2.Campaign:
        principal = current_principal()
        done = await _replayed(self.c, "CreateCampaign", request.request_id,
                               campaign_pb2.Campaign)
        if done is not None:
            return done
        prepared = await self.c.prepare(request.campaign)
        return await idempotency.once(
            self.db, self.clock, method="CreateCampaign", request_id=request.request_id,
            response_type=campaign_pb2.Campaign,
            create=lambda s: self.c.create(s, principal, request.campaign, prepared))

    async def GetCampaign(
        self,
        request: remote_service_pb2.GetCampaignRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> campaign_pb2.Campaign:
        return await self.c.get(current_principal(), request.id)

    async def ListCampaigns(
        self,
        request: remote_service_pb2.ListCampaignsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListCampaignsResponse:
        return await self.c.list(current_principal(), request)

    async def CloseCampaign(
        self,
        request: remote_service_pb2.CloseCampaignRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> campaign_pb2.Campaign:
        return await self.c.close(request.id)

    async def ListTargets(
        self,
        request: remote_service_pb2.ListTargetsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListTargetsResponse:
        return await self.c.list_targets(current_principal(), request)

    async def NextCallback(
        self,
        request: remote_service_pb2.NextCallbackRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.NextCallbackResponse:
        return await self.c.next_callback(current_principal(), request.campaign_id)

    async def RecordCallback(
        self,
        request: remote_service_pb2.RecordCallbackRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> campaign_pb2.Callback:
        principal = current_principal()
        return await idempotency.once(
            self.db, self.clock, method="RecordCallback", request_id=request.request_id,
            response_type=campaign_pb2.Callback,
            create=lambda s: self.c.record(s, principal, request))

    async def ListCallbacks(
        self,
        request: remote_service_pb2.ListCallbacksRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListCallbacksResponse:
        return await self.c.list_callbacks(current_principal(), request)

    async def GetCampaignProgress(
        self,
        request: remote_service_pb2.GetCampaignProgressRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> campaign_pb2.CampaignProgress:
        return await self.c.progress(current_principal(), request.id)

    async def GetRegulatoryProgress(
        self,
        request: remote_service_pb2.GetRegulatoryProgressRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> campaign_pb2.RegulatoryProgress:
        return await self.c.regulatory(request.year)

    # reports
    async def CreateReport(
        self,
        request: remote_service_pb2.CreateReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> report_pb2.Report:
        principal = current_principal()
        done = await _replayed(self.r, "CreateReport", request.request_id, report_pb2.Report)
        if done is not None:
            return done
        built = await self.r.build(request)
        return await idempotency.once(
            self.db, self.clock, method="CreateReport", request_id=request.request_id,
            response_type=report_pb2.Report,
            create=lambda s: self.r.store(s, principal, built))

    async def GetReport(
        self,
        request: remote_service_pb2.GetReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> report_pb2.Report:
        return await self.r.get(request.id)

    async def ListReports(
        self,
        request: remote_service_pb2.ListReportsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListReportsResponse:
        return await self.r.list(request)

    async def DeliverReport(
        self,
        request: remote_service_pb2.DeliverReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> report_pb2.Report:
        return await self.r.deliver(current_principal(), request)

    # tickets
    async def OpenTicket(
        self,
        request: remote_service_pb2.OpenTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        principal = current_principal()
        done = await _replayed(self.t, "OpenTicket", request.request_id, ticket_pb2.Ticket)
        if done is not None:
            return done
        self.t.validate_open(principal, request)
        client = None
        if request.ticket.client_id:
            client = await self.t.core.directory.get_client(request.ticket.client_id)
            if client is None:
                raise InvalidArgument({"ticket.client_id": "no such client"})
        elif request.ticket.caller_phone:
            # a known client's number identifies the caller, in any spacing or with +86
            client = await self.t.core.directory.client_by_phone(request.ticket.caller_phone)
        return await idempotency.once(
            self.db, self.clock, method="OpenTicket", request_id=request.request_id,
            response_type=ticket_pb2.Ticket,
            create=lambda s: self.t.open(s, principal, request, client))

    async def GetTicket(
        self,
        request: remote_service_pb2.GetTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.get(current_principal(), request.id)

    async def ListTickets(
        self,
        request: remote_service_pb2.ListTicketsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListTicketsResponse:
        return await self.t.list(current_principal(), request)

    async def RespondTicket(
        self,
        request: remote_service_pb2.RespondTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.respond(current_principal(), request)

    async def PauseTicket(
        self,
        request: remote_service_pb2.PauseTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.pause(current_principal(), request)

    async def ResumeTicket(
        self,
        request: remote_service_pb2.ResumeTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.resume(current_principal(), request)

    async def TransferTicket(
        self,
        request: remote_service_pb2.TransferTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.transfer(current_principal(), request)

    async def ResolveTicket(
        self,
        request: remote_service_pb2.ResolveTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.resolve(current_principal(), request)

    async def ReopenTicket(
        self,
        request: remote_service_pb2.ReopenTicketRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        return await self.t.reopen(current_principal(), request)

    async def RecordFollowUp(
        self,
        request: remote_service_pb2.RecordFollowUpRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Ticket:
        principal = current_principal()
        return await idempotency.once(
            self.db, self.clock, method="RecordFollowUp", request_id=request.request_id,
            response_type=ticket_pb2.Ticket,
            create=lambda s: self.t.follow_up(s, principal, request))

    # agents, policies, statistics
    async def SetAgentDuty(
        self,
        request: remote_service_pb2.SetAgentDutyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Agent:
        return await self.t.set_duty(current_principal(), request)

    async def SetAgentAbsence(
        self,
        request: remote_service_pb2.SetAgentAbsenceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.Agent:
        return await self.t.set_absence(current_principal(), request)

    async def ListAgents(
        self,
        request: remote_service_pb2.ListAgentsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListAgentsResponse:
        return await self.t.list_agents(request)

    async def ListSlaPolicies(
        self,
        request: remote_service_pb2.ListSlaPoliciesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.ListSlaPoliciesResponse:
        return await self.t.list_policies()

    async def UpdateSlaPolicy(
        self,
        request: remote_service_pb2.UpdateSlaPolicyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ticket_pb2.SlaPolicy:
        return await self.t.update_policy(request)

    async def GetWeeklyStatistics(
        self,
        request: remote_service_pb2.GetWeeklyStatisticsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> remote_service_pb2.GetWeeklyStatisticsResponse:
        return await self.s.weekly(current_principal(), request)

"""Thin gRPC adapter: request -> on-site module call -> response."""

from __future__ import annotations

from typing import Any

import grpc
from branch.onsite.v1 import consultation_pb2, day_pb2, meeting_pb2, onsite_service_pb2
from branch.onsite.v1 import onsite_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.onsite import consultation, day, meetings, relevant_notes
from services.onsite.core import Onsite, stored_result


class OnsiteServicer(grpc_api.OnsiteServiceServicer):
    def __init__(self, onsite: Onsite) -> None:
        self.o = onsite

    # ---- the day -----------------------------------------------------------------------------

    async def SetDailyPlan(
        self,
        request: onsite_service_pb2.SetDailyPlanRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> day_pb2.DailyPlan:
        return await day.set_plan(self.o, current_principal(), request)

    async def GetDailyPlan(
        self,
        request: onsite_service_pb2.GetDailyPlanRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> day_pb2.DailyPlan:
        return await day.get_plan(self.o, current_principal(), request)

    async def RecordVisit(
        self,
        request: onsite_service_pb2.RecordVisitRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> day_pb2.Visit:
        p = current_principal()
        first = await stored_result(self.o, p, "RecordVisit", request.request_id, day_pb2.Visit)
        if first is not None:
            return first
        manager, when = await day.prepare_visit(self.o, p, request.visit)
        return await idempotency.once(
            self.o.db, self.o.clock, method="RecordVisit", request_id=request.request_id,
            response_type=day_pb2.Visit,
            create=lambda s: day.record_visit(s, self.o, p, request.visit, manager, when),
        )

    async def ListVisits(
        self,
        request: onsite_service_pb2.ListVisitsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListVisitsResponse:
        return await day.list_visits(self.o, current_principal(), request)

    async def RecordPatrol(
        self,
        request: onsite_service_pb2.RecordPatrolRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> day_pb2.Patrol:
        p = current_principal()
        first = await stored_result(self.o, p, "RecordPatrol", request.request_id,
                                    day_pb2.Patrol)
        if first is not None:
            return first
        manager, when = await day.prepare_patrol(self.o, p, request.patrol)
        return await idempotency.once(
            self.o.db, self.o.clock, method="RecordPatrol", request_id=request.request_id,
            response_type=day_pb2.Patrol,
            create=lambda s: day.record_patrol(s, self.o, p, request.patrol, manager, when),
        )

    async def ListPatrols(
        self,
        request: onsite_service_pb2.ListPatrolsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListPatrolsResponse:
        return await day.list_patrols(self.o, current_principal(), request)

    async def SetQuota(
        self,
        request: onsite_service_pb2.SetQuotaRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> day_pb2.Quota:
        return await day.set_quota(self.o, current_principal(), request.quota)

    async def ListQuotas(
        self,
        request: onsite_service_pb2.ListQuotasRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListQuotasResponse:
        return await day.list_quotas(self.o, request)

    async def GetCompliance(
        self,
        request: onsite_service_pb2.GetComplianceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.GetComplianceResponse:
        return await day.compliance(self.o, current_principal(), request)

    # ---- consultation forms ------------------------------------------------------------------

    async def RaiseConsultationForm(
        self,
        request: onsite_service_pb2.RaiseConsultationFormRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> consultation_pb2.ConsultationForm:
        p = current_principal()
        first = await stored_result(self.o, p, "RaiseConsultationForm", request.request_id,
                                    consultation_pb2.ConsultationForm)
        if first is not None:
            return first
        manager, when, holdings = await consultation.prepare_raise(self.o, p, request)
        return await idempotency.once(
            self.o.db, self.o.clock, method="RaiseConsultationForm",
            request_id=request.request_id, response_type=consultation_pb2.ConsultationForm,
            create=lambda s: consultation.raise_form(s, self.o, request, manager, when, holdings),
        )

    async def GetConsultationForm(
        self,
        request: onsite_service_pb2.GetConsultationFormRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> consultation_pb2.ConsultationForm:
        return await consultation.get_form(self.o, current_principal(), request.id)

    async def ListConsultationForms(
        self,
        request: onsite_service_pb2.ListConsultationFormsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListConsultationFormsResponse:
        return await consultation.list_forms(self.o, current_principal(), request)

    async def AnalyseConsultationForm(
        self,
        request: onsite_service_pb2.AnalyseConsultationFormRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> consultation_pb2.ConsultationForm:
        return await consultation.analyse(self.o, current_principal(), request)

    async def DeliverConsultationForm(
        self,
        request: onsite_service_pb2.DeliverConsultationFormRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> consultation_pb2.ConsultationForm:
        return await consultation.deliver(self.o, current_principal(), request)

    async def CancelConsultationForm(
        self,
        request: onsite_service_pb2.CancelConsultationFormRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> consultation_pb2.ConsultationForm:
        return await consultation.cancel(self.o, current_principal(), request)

    async def ListRelevantNotes(
        self,
        request: onsite_service_pb2.ListRelevantNotesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListRelevantNotesResponse:
        return await relevant_notes.list_relevant_notes(
            self.o, current_principal(), self.o.research, request)

    async def SummarizeOverdueForms(
        self,
        request: onsite_service_pb2.SummarizeOverdueFormsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.SummarizeOverdueFormsResponse:
        return await consultation.summarize_overdue(self.o, request)

    async def GetOnsiteSettings(
        self,
        request: onsite_service_pb2.GetOnsiteSettingsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.OnsiteSettings:
        return await consultation.get_settings(self.o)

    async def UpdateOnsiteSettings(
        self,
        request: onsite_service_pb2.UpdateOnsiteSettingsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.OnsiteSettings:
        return await consultation.update_settings(self.o, current_principal(), request.settings)

    # ---- meetings ----------------------------------------------------------------------------

    async def CreateMeetingSeries(
        self,
        request: onsite_service_pb2.CreateMeetingSeriesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.CreateMeetingSeriesResponse:
        from branch.onsite.v1 import onsite_service_pb2 as api

        p = current_principal()
        first = await stored_result(self.o, p, "CreateMeetingSeries", request.request_id,
                                    api.CreateMeetingSeriesResponse)
        if first is not None:
            return first
        meetings.validate_series(request)
        await meetings.verify_presenter(self.o, "", request.presenter_kind, request.presenter_id)
        return await idempotency.once(
            self.o.db, self.o.clock, method="CreateMeetingSeries",
            request_id=request.request_id, response_type=api.CreateMeetingSeriesResponse,
            create=lambda s: meetings.create_series(s, self.o, p, request),
        )

    async def ScheduleMeeting(
        self,
        request: onsite_service_pb2.ScheduleMeetingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> meeting_pb2.Meeting:
        p = current_principal()
        first = await stored_result(self.o, p, "ScheduleMeeting", request.request_id,
                                    meeting_pb2.Meeting)
        if first is not None:
            return first
        start = meetings.validate_meeting(self.o, p, request.meeting)
        await meetings.verify_presenter(self.o, "meeting.", request.meeting.presenter_kind,
                                        request.meeting.presenter_id)
        return await idempotency.once(
            self.o.db, self.o.clock, method="ScheduleMeeting", request_id=request.request_id,
            response_type=meeting_pb2.Meeting,
            create=lambda s: meetings.schedule(s, self.o, p, request.meeting, start),
        )

    async def UpdateMeeting(
        self,
        request: onsite_service_pb2.UpdateMeetingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> meeting_pb2.Meeting:
        return await meetings.update_meeting(self.o, current_principal(), request)

    async def GetMeeting(
        self,
        request: onsite_service_pb2.GetMeetingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> meeting_pb2.Meeting:
        return await meetings.get_meeting(self.o, request.id)

    async def ListMeetings(
        self,
        request: onsite_service_pb2.ListMeetingsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListMeetingsResponse:
        return await meetings.list_meetings(self.o, request)

    async def RegisterForMeeting(
        self,
        request: onsite_service_pb2.RegisterForMeetingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> meeting_pb2.Registration:
        p = current_principal()
        first = await stored_result(self.o, p, "RegisterForMeeting", request.request_id,
                                    meeting_pb2.Registration)
        if first is not None:
            return first
        await meetings.check_registrant(self.o, p, request)
        return await idempotency.once(
            self.o.db, self.o.clock, method="RegisterForMeeting",
            request_id=request.request_id, response_type=meeting_pb2.Registration,
            create=lambda s: meetings.register(s, self.o, p, request),
        )

    async def CancelRegistration(
        self,
        request: onsite_service_pb2.CancelRegistrationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> meeting_pb2.Registration:
        return await meetings.cancel_registration(self.o, current_principal(), request)

    async def ListRegistrations(
        self,
        request: onsite_service_pb2.ListRegistrationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> onsite_service_pb2.ListRegistrationsResponse:
        return await meetings.list_registrations(self.o, request)

    async def RecordAttendance(
        self,
        request: onsite_service_pb2.RecordAttendanceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> meeting_pb2.Meeting:
        return await meetings.record_attendance(self.o, current_principal(), request)

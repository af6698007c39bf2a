"""Thin gRPC adapter: request -> domain call -> response."""

from __future__ import annotations

from branch.insight.v1 import duty_log_pb2, inspection_pb2, performance_pb2
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import insight_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.common.errors import InvalidArgument
from services.insight import render
from services.insight.reports import parse_day
from services.insight.service import Insight


class InsightServicer(grpc_api.InsightServiceServicer):
    def __init__(self, insight: Insight) -> None:
        self.i = insight

    async def CreateScorecard(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.i.db, self.i.clock, method="CreateScorecard", request_id=request.request_id,
            response_type=inspection_pb2.Scorecard,
            create=lambda s: self.i.scorecards.create(s, p.staff_id, request.scorecard))

    async def GetScorecard(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.scorecards.get(request.id)

    async def ListScorecards(self, request, context):  # type: ignore[no-untyped-def]
        cards, token = await self.i.scorecards.list(request.page_size, request.page_token)
        return api.ListScorecardsResponse(scorecards=cards, next_page_token=token)

    async def DrawSamples(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.draw(request.month, request.per_person)

    async def GetInspectionSettings(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.settings.get()

    async def UpdateInspectionSettings(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.settings.update(current_principal().staff_id, request.settings)

    async def CreateWeeklySummary(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.weekly.create(current_principal().staff_id, request.weekly_summary)

    async def UpdateWeeklySummary(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.weekly.update(current_principal().staff_id, request.weekly_summary)

    async def GetWeeklySummary(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.weekly.get(request.week)

    async def ListWeeklySummaries(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.weekly.list(request)

    async def GetInspection(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.get(current_principal(), request.id)

    async def ListInspections(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.list(current_principal(), request)

    async def ScoreInspection(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.score(current_principal(), request)

    async def GetInspectionSummary(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.summary(current_principal(), request)

    async def CreateAppeal(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.i.db, self.i.clock, method="CreateAppeal", request_id=request.request_id,
            response_type=inspection_pb2.Appeal,
            create=lambda s: self.i.inspections.appeal(s, p, request.appeal))

    async def ListAppeals(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.list_appeals(current_principal(), request)

    async def DecideAppeal(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.inspections.decide(current_principal(), request)

    async def CreateDutyLogEntry(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.i.db, self.i.clock, method="CreateDutyLogEntry",
            request_id=request.request_id, response_type=duty_log_pb2.DutyLogEntry,
            create=lambda s: self.i.duty_log.append(s, p.staff_id, request.entry))

    async def ListDutyLogEntries(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.duty_log.list(request)

    async def GenerateReport(self, request, context):  # type: ignore[no-untyped-def]
        day = parse_day(request.day)
        report, _ = await self.i.reports.generate(request.kind, day,
                                                  current_principal().staff_id)
        return report

    async def GetReport(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.reports.get(request.id)

    async def ListReports(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.reports.list(request)

    async def DownloadReport(self, request, context):  # type: ignore[no-untyped-def]
        if request.format not in render.FORMATS:
            raise InvalidArgument({"format": "HTML, CSV or XLSX"})
        report = await self.i.reports.get(request.id)
        name, content_type, content = render.render(report, request.format)
        return api.DownloadReportResponse(filename=name, content_type=content_type,
                                          content=content)

    async def GetReadModelStatus(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.status()

    async def CreatePerformanceReview(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.i.db, self.i.clock, method="CreatePerformanceReview",
            request_id=request.request_id, response_type=performance_pb2.PerformanceReview,
            create=lambda s: self.i.performance.create(s, p, request.performance_review))

    async def GetPerformanceReview(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.performance.get(current_principal(), request.id)

    async def ListPerformanceReviews(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.performance.list(current_principal(), request)

    async def CreateKeyEvent(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.i.db, self.i.clock, method="CreateKeyEvent", request_id=request.request_id,
            response_type=performance_pb2.KeyEvent,
            create=lambda s: self.i.performance.add_key_event(s, p, request.key_event))

    async def InterviewPerformanceReview(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.performance.interview(current_principal(), request)

    async def AppealPerformanceReview(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.performance.appeal(current_principal(), request)

    async def DecidePerformanceReviewAppeal(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.performance.decide(current_principal(), request)

    async def RebuildReadModel(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.rebuild()

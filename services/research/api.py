"""Thin gRPC adapter: request -> domain call -> response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from branch.research.v1 import (
    distribution_pb2,
    note_pb2,
    research_request_pb2,
    research_service_pb2,
)
from branch.research.v1 import research_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.research.service import Research


class ResearchServicer(grpc_api.ResearchServiceServicer):
    def __init__(self, research: Research) -> None:
        self.r = research

    async def CreateNote(
        self,
        request: research_service_pb2.CreateNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        p = current_principal()
        return await idempotency.once(
            self.r.db, self.r.clock, method="CreateNote", request_id=request.request_id,
            response_type=note_pb2.Note,
            create=lambda s: self.r.notes.create(s, p, request.note),
        )

    async def GetNote(
        self,
        request: research_service_pb2.GetNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.get(current_principal(), request.id, request.revision)

    async def ListNotes(
        self,
        request: research_service_pb2.ListNotesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_service_pb2.ListNotesResponse:
        return await self.r.notes.list(current_principal(), request)

    async def UpdateNote(
        self,
        request: research_service_pb2.UpdateNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.update(
            current_principal(), request.note, list(request.update_mask.paths)
        )

    async def ListNoteRevisions(
        self,
        request: research_service_pb2.ListNoteRevisionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_service_pb2.ListNoteRevisionsResponse:
        return await self.r.notes.list_revisions(current_principal(), request)

    async def SubmitNote(
        self,
        request: research_service_pb2.SubmitNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.submit(current_principal(), request.id)

    async def ListReviewQueue(
        self,
        request: research_service_pb2.ListReviewQueueRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_service_pb2.ListReviewQueueResponse:
        return await self.r.notes.review_queue(request)

    async def ApproveNote(
        self,
        request: research_service_pb2.ApproveNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.approve(current_principal(), request)

    async def ReturnNote(
        self,
        request: research_service_pb2.ReturnNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.return_(current_principal(), request)

    async def PublishNote(
        self,
        request: research_service_pb2.PublishNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.publish(current_principal(), request.id)

    async def WithdrawNote(
        self,
        request: research_service_pb2.WithdrawNoteRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> note_pb2.Note:
        return await self.r.notes.withdraw(current_principal(), request.id, request.reason)

    async def CreateResearchRequest(
        self,
        request: research_service_pb2.CreateResearchRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_request_pb2.ResearchRequest:
        p = current_principal()
        return await idempotency.once(
            self.r.db, self.r.clock, method="CreateResearchRequest",
            request_id=request.request_id, response_type=research_request_pb2.ResearchRequest,
            create=lambda s: self.r.requests.create(s, p, request.research_request),
        )

    async def GetResearchRequest(
        self,
        request: research_service_pb2.GetResearchRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_request_pb2.ResearchRequest:
        return await self.r.requests.get(current_principal(), request.id)

    async def ListResearchRequests(
        self,
        request: research_service_pb2.ListResearchRequestsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_service_pb2.ListResearchRequestsResponse:
        return await self.r.requests.list(current_principal(), request)

    async def ClaimResearchRequest(
        self,
        request: research_service_pb2.ClaimResearchRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_request_pb2.ResearchRequest:
        return await self.r.requests.claim(current_principal(), request.id)

    async def ReleaseResearchRequest(
        self,
        request: research_service_pb2.ReleaseResearchRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_request_pb2.ResearchRequest:
        return await self.r.requests.release(current_principal(), request.id)

    async def AnswerResearchRequest(
        self,
        request: research_service_pb2.AnswerResearchRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_request_pb2.ResearchRequest:
        return await self.r.requests.answer(current_principal(), request)

    async def GetNoteReach(
        self,
        request: research_service_pb2.GetNoteReachRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> distribution_pb2.NoteReach:
        return await self.r.ledger.get_reach(current_principal(), request.note_id)

    async def ListNoteReach(
        self,
        request: research_service_pb2.ListNoteReachRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_service_pb2.ListNoteReachResponse:
        return await self.r.ledger.list_reach(current_principal(), request)

    async def ListDistributionRecords(
        self,
        request: research_service_pb2.ListDistributionRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> research_service_pb2.ListDistributionRecordsResponse:
        return await self.r.ledger.list_records(request)

    async def ExportDistributionLedger(
        self,
        request: research_service_pb2.ExportDistributionLedgerRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[research_service_pb2.ExportDistributionLedgerResponse]:
        async for chunk in self.r.ledger.export_csv(request):
            yield chunk

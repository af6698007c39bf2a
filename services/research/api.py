"""Thin gRPC adapter: request -> domain call -> response."""

from __future__ import annotations

from branch.research.v1 import note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2_grpc as grpc_api

from services.common import idempotency
from services.common.auth import current_principal
from services.research.service import Research


class ResearchServicer(grpc_api.ResearchServiceServicer):
    def __init__(self, research: Research) -> None:
        self.r = research

    async def CreateNote(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.r.db, self.r.clock, method="CreateNote", request_id=request.request_id,
            response_type=note_pb2.Note,
            create=lambda s: self.r.notes.create(s, p, request.note),
        )

    async def GetNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.get(current_principal(), request.id, request.revision)

    async def ListNotes(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.list(current_principal(), request)

    async def UpdateNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.update(
            current_principal(), request.note, list(request.update_mask.paths)
        )

    async def ListNoteRevisions(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.list_revisions(current_principal(), request)

    async def SubmitNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.submit(current_principal(), request.id)

    async def ListReviewQueue(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.review_queue(request)

    async def ApproveNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.approve(current_principal(), request)

    async def ReturnNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.return_(current_principal(), request)

    async def PublishNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.publish(current_principal(), request.id)

    async def WithdrawNote(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.notes.withdraw(current_principal(), request.id, request.reason)

    async def CreateResearchRequest(self, request, context):  # type: ignore[no-untyped-def]
        p = current_principal()
        return await idempotency.once(
            self.r.db, self.r.clock, method="CreateResearchRequest",
            request_id=request.request_id, response_type=research_request_pb2.ResearchRequest,
            create=lambda s: self.r.requests.create(s, p, request.research_request),
        )

    async def GetResearchRequest(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.requests.get(current_principal(), request.id)

    async def ListResearchRequests(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.requests.list(current_principal(), request)

    async def ClaimResearchRequest(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.requests.claim(current_principal(), request.id)

    async def ReleaseResearchRequest(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.requests.release(current_principal(), request.id)

    async def AnswerResearchRequest(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.requests.answer(current_principal(), request)

    async def GetNoteReach(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.ledger.get_reach(current_principal(), request.note_id)

    async def ListNoteReach(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.ledger.list_reach(current_principal(), request)

    async def ListDistributionRecords(self, request, context):  # type: ignore[no-untyped-def]
        return await self.r.ledger.list_records(request)

    async def ExportDistributionLedger(self, request, context):  # type: ignore[no-untyped-def]
        async for chunk in self.r.ledger.export_csv(request):
            yield chunk

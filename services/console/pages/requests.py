"""Research requests (`/research-requests`): the analysts' queue (open and claimed, by due
time, as research lists it); claim one, answer it (in words, or with one of your published
notes) or give it back."""

from __future__ import annotations

import asyncio
from typing import Any

from branch.research.v1 import note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as rapi
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import enums, views, web
from services.console.i18n import N_
from services.console.views import ItemCall, Refusal

QUEUE_SIZE = 100
DONE = {
    "claimed": N_("The request is yours; answer it below."),
    "released": N_("The request is back in the queue."),
    "answered": N_("The answer was sent to whoever asked."),
}


async def queue(request: Request, refusal: Refusal | None = None, failed: str = "",
                form: FormData | None = None, status: int = 200) -> Response:
    s = web.require_role(request, "analyst")
    st = await web.stubs(request)
    listed, mine = await asyncio.gather(
        st.research.ListResearchRequests(rapi.ListResearchRequestsRequest(
            page_size=QUEUE_SIZE), metadata=st.metadata),
        st.research.ListNotes(rapi.ListNotesRequest(
            author_id=s.staff_id, state=note_pb2.NOTE_STATE_PUBLISHED, page_size=100),
            metadata=st.metadata))
    rows: list[dict[str, Any]] = []
    for r in listed.research_requests:
        rows.append({
            "id": r.id, "question": r.question, "tickers": ", ".join(r.tickers),
            "client_id": r.client_id, "client": r.client_display_name,
            "asker": r.asker_display_name, "source": enums.label_of(r, "source"),
            "state": enums.label_of(r, "state"), "due": web.when(from_ts(r.due_time)),
            "overdue": r.overdue, "claimed_by": r.claimed_by_display_name,
            "open": r.state == research_request_pb2.RESEARCH_REQUEST_STATE_OPEN,
            "mine": (r.state == research_request_pb2.RESEARCH_REQUEST_STATE_CLAIMED
                     and r.claimed_by == s.staff_id),
        })
    return web.render(request, "pages/requests/queue.html", status_code=status, rows=rows,
                      notes=[(n.id, n.title) for n in mine.notes],
                      refusal=refusal, failed=failed, form=form or {},
                      done=views.done(request, DONE))


async def _act(request: Request, form: FormData, call: ItemCall, done: str) -> Response:
    """Claim, release or answer the request: research's `call`, then the queue with `done`'s
    notice, or with research's refusal beside the request."""
    web.require_role(request, "analyst")
    st = await web.stubs(request)
    request_id = request.path_params["request_id"]
    return await views.attempt(call(st, request_id), f"/research-requests?done={done}",
                               lambda why: queue(request, why, request_id, form, 400))


async def claim(request: Request, form: FormData) -> Response:
    return await _act(request, form, lambda st, request_id: st.research.ClaimResearchRequest(
        rapi.ClaimResearchRequestRequest(id=request_id), metadata=st.metadata), "claimed")


async def release(request: Request, form: FormData) -> Response:
    return await _act(request, form, lambda st, request_id: st.research.ReleaseResearchRequest(
        rapi.ReleaseResearchRequestRequest(id=request_id), metadata=st.metadata), "released")


async def answer(request: Request, form: FormData) -> Response:
    return await _act(request, form, lambda st, request_id: st.research.AnswerResearchRequest(
        rapi.AnswerResearchRequestRequest(id=request_id, answer=web.text(form, "answer"),
                                          note_id=web.text(form, "note_id")),
        metadata=st.metadata), "answered")


ROUTES = [
    Route("/research-requests", queue, methods=["GET"]),
    Route("/research-requests/{request_id}/claim", web.form_handler(claim), methods=["POST"]),
    Route("/research-requests/{request_id}/release", web.form_handler(release),
          methods=["POST"]),
    Route("/research-requests/{request_id}/answer", web.form_handler(answer),
          methods=["POST"]),
]
NAV = [web.NavItem("/research-requests", N_("Research requests"), frozenset({"analyst"}))]

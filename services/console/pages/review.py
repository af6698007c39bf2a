"""Compliance's home (`/review`): the review queue (submitted notes, oldest first) and the
approved notes waiting to be published; a note's review page shows what changed since an
earlier revision (the previous one unless another is chosen), and approves the revision read,
sends it back with comments, or publishes it. Research decides (e.g. nobody approves their
own note, an approval names the revision read); the page shows its refusal."""

from __future__ import annotations

import asyncio

from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as rapi
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.console import diff, enums, web
from services.console.i18n import N_, _
from services.console.pages.notes import note_row
from services.console.views import Refusal, attempt

DONE = {
    "approved": N_("Approved. Publish it when it should reach clients."),
    "returned": N_("Sent back to the author with your comments."),
    "published": N_("Published: key clients' brokers get relay tasks."),
}


def document(n: note_pb2.Note | note_pb2.NoteRevision) -> list[str]:
    """A revision's content as lines, to compare two."""
    stances = ", ".join(f"{s.ticker} {enums.label_of(s, 'stance')}" for s in n.stances)
    head = [
        (_("Title"), n.title),
        (_("Kind"), enums.label_of(n, "kind")),
        (_("Stances"), stances),
        (_("Risk level"), enums.label_of(n, "risk_level")),
        (_("Valid until"), n.valid_until),
        (_("Audience"), enums.label_of(n, "audience")),
        (_("Summary"), n.summary),
    ]
    return [f"{k}: {v}" for k, v in head] + [""] + n.body.splitlines()


async def review_queue(request: Request) -> Response:
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    queued, approved = await asyncio.gather(
        st.research.ListReviewQueue(rapi.ListReviewQueueRequest(page_size=100),
                                    metadata=st.metadata),
        st.research.ListNotes(rapi.ListNotesRequest(
            state=note_pb2.NOTE_STATE_APPROVED, page_size=100), metadata=st.metadata))
    done = request.query_params.get("done", "")
    return web.render(request, "pages/review/queue.html",
                      queue=[note_row(n, f"/review/{n.id}") for n in queued.notes],
                      approved=[note_row(n, f"/review/{n.id}") for n in approved.notes],
                      done=_(DONE[done]) if done in DONE else "")


async def review_page(request: Request, refusal: Refusal | None = None,
                      form: FormData | None = None, status: int = 200, action: str = ""
                      ) -> Response:
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    note_id = request.path_params["note_id"]
    note, listed = await asyncio.gather(
        st.research.GetNote(rapi.GetNoteRequest(id=note_id), metadata=st.metadata),
        st.research.ListNoteRevisions(rapi.ListNoteRevisionsRequest(
            note_id=note_id, page_size=100), metadata=st.metadata))
    revisions = {r.revision: r for r in listed.revisions}
    earlier = sorted((r for r in revisions if r < note.revision), reverse=True)
    wanted = request.query_params.get("against", "")
    against = int(wanted) if wanted.isdigit() and int(wanted) in earlier else (
        earlier[0] if earlier else 0)
    current = document(note)
    # the first revision has nothing to differ from: shown as it is
    table = diff.rows(document(revisions[against]) if against else current, current)
    history = [{"revision": r.revision, "author": r.author_display_name,
                "decision": enums.label_of(r, "review_decision"),
                "reviewer": r.reviewer_display_name, "comments": r.review_comments}
               for r in sorted(revisions.values(), key=lambda r: -r.revision)]
    done = request.query_params.get("done", "")
    return web.render(
        request, "pages/review/note.html", status_code=status, note=note,
        state=enums.label_of(note, "state"), against=against, earlier=earlier,
        table=table, changed=diff.changed(table), history=history,
        can_review=note.state == note_pb2.NOTE_STATE_SUBMITTED,
        can_publish=note.state == note_pb2.NOTE_STATE_APPROVED,
        refusal=refusal, form=form or {}, action=action,
        done=_(DONE[done]) if done in DONE else "")


async def review(request: Request) -> Response:
    return await review_page(request)


def _revision(form: FormData) -> int:
    value = web.text(form, "revision")
    return int(value) if value.isdigit() else 0


async def approve(request: Request, form: FormData) -> Response:
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    note_id = request.path_params["note_id"]
    reply, refusal = await attempt(st.research.ApproveNote(rapi.ApproveNoteRequest(
        id=note_id, revision=_revision(form), comments=web.text(form, "comments")),
        metadata=st.metadata))
    if reply is None:
        return await review_page(request, refusal, form, 400, "approve")
    return RedirectResponse(f"/review/{note_id}?done=approved", status_code=303)


async def send_back(request: Request, form: FormData) -> Response:
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    note_id = request.path_params["note_id"]
    reply, refusal = await attempt(st.research.ReturnNote(rapi.ReturnNoteRequest(
        id=note_id, revision=_revision(form), comments=web.text(form, "return_comments")),
        metadata=st.metadata))
    if reply is None:
        return await review_page(request, refusal, form, 400, "return")
    return RedirectResponse("/review?done=returned", status_code=303)


async def publish(request: Request, form: FormData) -> Response:
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    note_id = request.path_params["note_id"]
    reply, refusal = await attempt(st.research.PublishNote(rapi.PublishNoteRequest(id=note_id),
                                                           metadata=st.metadata))
    if reply is None:
        return await review_page(request, refusal, form, 400)
    return RedirectResponse("/review?done=published", status_code=303)


ROUTES = [
    Route("/review", review_queue, methods=["GET"]),
    Route("/review/{note_id}", review, methods=["GET"]),
    Route("/review/{note_id}/approve", web.form_handler(approve), methods=["POST"]),
    Route("/review/{note_id}/return", web.form_handler(send_back), methods=["POST"]),
    Route("/review/{note_id}/publish", web.form_handler(publish), methods=["POST"]),
]
NAV = [web.NavItem("/review", N_("Review queue"), frozenset({"compliance"}))]

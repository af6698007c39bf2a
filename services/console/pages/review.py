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
from starlette.responses import Response
from starlette.routing import Route

from services.console import diff, enums, views, web
from services.console.i18n import N_, _
from services.console.pages.notes import history, note_row, note_with_revisions
from services.console.views import ItemCall, Refusal

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
    return web.render(request, "pages/review/queue.html",
                      queue=[note_row(n, f"/review/{n.id}") for n in queued.notes],
                      approved=[note_row(n, f"/review/{n.id}") for n in approved.notes],
                      done=views.done(request, DONE))


async def review_page(request: Request, refusal: Refusal | None = None,
                      form: FormData | None = None, status: int = 200, action: str = ""
                      ) -> Response:
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    note, listed = await note_with_revisions(st, request.path_params["note_id"])
    revisions = {r.revision: r for r in listed}
    earlier = sorted((r for r in revisions if r < note.revision), reverse=True)
    wanted = request.query_params.get("against", "")
    against = int(wanted) if wanted.isdigit() and int(wanted) in earlier else (
        earlier[0] if earlier else 0)
    current = document(note)
    # the first revision has nothing to differ from: shown as it is
    table = diff.rows(document(revisions[against]) if against else current, current)
    return web.render(
        request, "pages/review/note.html", status_code=status, note=note,
        state=enums.label_of(note, "state"), against=against, earlier=earlier,
        table=table, changed=diff.changed(table), history=history(listed),
        can_review=note.state == note_pb2.NOTE_STATE_SUBMITTED,
        can_publish=note.state == note_pb2.NOTE_STATE_APPROVED,
        refusal=refusal, form=form or {}, action=action, done=views.done(request, DONE))


def _revision(form: FormData) -> int:
    value = web.text(form, "revision")
    return int(value) if value.isdigit() else 0


async def _decide(request: Request, form: FormData, call: ItemCall, done: str,
                  action: str = "") -> Response:
    """Approve, send back or publish the note: research's `call`, then `done` (a path, {id}
    the note's id); or the review page again with research's refusal beside the form of
    `action`."""
    web.require_role(request, "compliance")
    st = await web.stubs(request)
    note_id = request.path_params["note_id"]
    return await views.attempt(call(st, note_id), done.format(id=note_id),
                               lambda why: review_page(request, why, form, 400, action))


async def approve(request: Request, form: FormData) -> Response:
    return await _decide(request, form, lambda st, note_id: st.research.ApproveNote(
        rapi.ApproveNoteRequest(id=note_id, revision=_revision(form),
                                comments=web.text(form, "comments")), metadata=st.metadata),
        "/review/{id}?done=approved", "approve")


async def send_back(request: Request, form: FormData) -> Response:
    return await _decide(request, form, lambda st, note_id: st.research.ReturnNote(
        rapi.ReturnNoteRequest(id=note_id, revision=_revision(form),
                               comments=web.text(form, "return_comments")),
        metadata=st.metadata), "/review?done=returned", "return")


async def publish(request: Request, form: FormData) -> Response:
    return await _decide(request, form, lambda st, note_id: st.research.PublishNote(
        rapi.PublishNoteRequest(id=note_id), metadata=st.metadata), "/review?done=published")


ROUTES = [
    Route("/review", review_queue, methods=["GET"]),
    Route("/review/{note_id}", review_page, methods=["GET"]),
    Route("/review/{note_id}/approve", web.form_handler(approve), methods=["POST"]),
    Route("/review/{note_id}/return", web.form_handler(send_back), methods=["POST"]),
    Route("/review/{note_id}/publish", web.form_handler(publish), methods=["POST"]),
]
NAV = [web.NavItem("/review", N_("Review queue"), frozenset({"compliance"}))]

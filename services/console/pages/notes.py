"""The analyst's home (`/notes`): their research notes, the note editor (create, revise: every
save is a new revision in research), submitting for compliance review, and publishing once
approved. What may change when is research's rule: the page offers the actions that fit the
note's state and shows research's refusal when it says no."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from branch.directory.v1 import client_pb2
from branch.research.v1 import note_enums_pb2, note_pb2
from branch.research.v1 import research_service_pb2 as rapi
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import enums, views, web
from services.console.backend import Stubs
from services.console.i18n import N_
from services.console.views import ItemCall, Refusal

STANCE_ROWS = 3  # empty ticker rows offered below the note's own
LIST_SIZE = 100
KIND = note_enums_pb2.NoteKind.DESCRIPTOR
STANCE = note_enums_pb2.Stance.DESCRIPTOR
AUDIENCE = note_enums_pb2.Audience.DESCRIPTOR
RISK = client_pb2.RiskLevel.DESCRIPTOR
EDITABLE = (note_pb2.NOTE_STATE_DRAFT, note_pb2.NOTE_STATE_RETURNED)
DONE = {
    "created": N_("The draft is saved as revision 1."),
    "saved": N_("Saved as a new revision."),
    "submitted": N_("Sent to compliance for review."),
    "published": N_("The note is published."),
}


def note_row(n: note_pb2.Note, href: str) -> dict[str, Any]:
    """A note as one line of a list (also the compliance queue's)."""
    return {"href": href, "title": n.title, "state": enums.label_of(n, "state"),
            "revision": n.revision, "author": n.author_display_name,
            "kind": enums.label_of(n, "kind"), "risk": enums.label_of(n, "risk_level"),
            "tickers": ", ".join(n.tickers),
            "updated": web.when(from_ts(n.update_time)),
            "submitted": web.when(from_ts(n.submit_time))}


def _ticker_rows(form: FormData) -> list[int]:
    """The numbers of the ticker rows the form carries (ticker_1, ticker_2, ...)."""
    return sorted(int(k[7:]) for k in form if k.startswith("ticker_") and k[7:].isdigit())


def _note_from(form: FormData, note_id: str = "") -> tuple[note_pb2.Note, dict[str, int]]:
    """The note the form describes; and for each ticker row shown (1-based) its index in
    note.stances (research names a bad stance by that index)."""
    kind, risk, audience = (web.text(form, k) for k in ("kind", "risk_level", "audience"))
    note = note_pb2.Note(
        id=note_id, title=web.text(form, "title"), summary=web.text(form, "summary"),
        body=web.text(form, "body"), valid_until=web.text(form, "valid_until"),
        kind=note_enums_pb2.NoteKind.ValueType(int(kind) if kind.isdigit() else 0),
        risk_level=client_pb2.RiskLevel.ValueType(int(risk) if risk.isdigit() else 0),
        audience=note_enums_pb2.Audience.ValueType(int(audience) if audience.isdigit() else 0))
    rows: dict[str, int] = {}
    for i in _ticker_rows(form):  # every row sent: research says when there are too many
        ticker, stance = web.text(form, f"ticker_{i}"), web.text(form, f"stance_{i}")
        if not (ticker or stance):
            continue
        rows[str(i)] = len(note.stances)
        note.stances.add(ticker=ticker, stance=int(stance) if stance.isdigit() else 0)
    return note, rows


def _editor(note: note_pb2.Note | None, form: FormData | None) -> dict[str, Any]:
    """The editor's values: the form as sent back, else the note, else empty."""
    if form is not None:
        values = {k: web.text(form, k) for k in ("title", "summary", "body", "kind",
                                                 "risk_level", "valid_until", "audience")}
        # the rows as sent, numbered as sent: research's words about a row stay beside it
        rows = [(i, (web.text(form, f"ticker_{i}"), web.text(form, f"stance_{i}")))
                for i in _ticker_rows(form)]
    else:
        values, stances = {}, []
        if note is not None:
            values = {"title": note.title, "summary": note.summary, "body": note.body,
                      "kind": str(note.kind or ""), "risk_level": str(note.risk_level or ""),
                      "valid_until": note.valid_until, "audience": str(note.audience or "")}
            stances = [(s.ticker, str(s.stance)) for s in note.stances]
        rows = list(enumerate(stances + [("", "")] * STANCE_ROWS, start=1))
    return {"values": values, "stances": rows,
            "kinds": enums.choices(KIND), "stance_choices": enums.choices(STANCE),
            "audiences": enums.choices(AUDIENCE), "risks": enums.choices(RISK)}


async def note_with_revisions(st: Stubs, note_id: str
                              ) -> tuple[note_pb2.Note, list[note_pb2.NoteRevision]]:
    """A note as it stands and its revisions (the latest 100; also the review page's)."""
    note, listed = await asyncio.gather(
        st.research.GetNote(rapi.GetNoteRequest(id=note_id), metadata=st.metadata),
        st.research.ListNoteRevisions(rapi.ListNoteRevisionsRequest(
            note_id=note_id, page_size=100), metadata=st.metadata))
    return note, list(listed.revisions)


def history(revisions: list[note_pb2.NoteRevision]) -> list[dict[str, Any]]:
    """The revisions as the page lists them, newest first (also the review page's)."""
    return [{"revision": r.revision, "time": web.when(from_ts(r.create_time)),
             "author": r.author_display_name,
             "decision": enums.label_of(r, "review_decision"),
             "reviewer": r.reviewer_display_name, "comments": r.review_comments}
            for r in sorted(revisions, key=lambda r: -r.revision)]


async def notes(request: Request) -> Response:
    s = web.require_role(request, "analyst")
    st = await web.stubs(request)
    reply = await st.research.ListNotes(rapi.ListNotesRequest(
        author_id=s.staff_id, page_size=LIST_SIZE, include_expired=True), metadata=st.metadata)
    rows = [note_row(n, f"/notes/{n.id}") for n in reply.notes]
    return web.render(request, "pages/notes/list.html", rows=rows)


def _stance_errors(refusal: Refusal | None, rows: dict[str, int] | None) -> dict[int, str]:
    """Research's words about a stance, by the ticker row (1-based) it came from."""
    found: dict[int, str] = {}
    for row, i in (rows or {}).items():
        words = [refusal.fields.get(f"note.stances[{i}].{part}", "") if refusal else ""
                 for part in ("ticker", "stance")]
        if any(words):
            found[int(row)] = "; ".join(w for w in words if w)
    return found


async def new_note(request: Request, refusal: Refusal | None = None,
                   form: FormData | None = None, status: int = 200,
                   rows: dict[str, int] | None = None) -> Response:
    web.require_role(request, "analyst")
    return web.render(request, "pages/notes/edit.html", status_code=status, note=None,
                      refusal=refusal, request_id=(
                          web.text(form, "request_id") if form else str(uuid.uuid4())),
                      stance_errors=_stance_errors(refusal, rows), **_editor(None, form))


async def create(request: Request, form: FormData) -> Response:
    web.require_role(request, "analyst")
    st = await web.stubs(request)
    note, rows = _note_from(form)
    return await views.attempt(
        st.research.CreateNote(rapi.CreateNoteRequest(
            note=note, request_id=web.text(form, "request_id")), metadata=st.metadata),
        lambda made: f"/notes/{made.id}?done=created",
        lambda why: new_note(request, why, form, 400, rows))


async def note_page(request: Request, refusal: Refusal | None = None,
                    form: FormData | None = None, status: int = 200,
                    rows: dict[str, int] | None = None) -> Response:
    web.require_role(request, "analyst")
    st = await web.stubs(request)
    note, revisions = await note_with_revisions(st, request.path_params["note_id"])
    return web.render(
        request, "pages/notes/edit.html", status_code=status, note=note,
        state=enums.label_of(note, "state"), editable=note.state in EDITABLE,
        returned=note.state == note_pb2.NOTE_STATE_RETURNED,
        can_publish=note.state == note_pb2.NOTE_STATE_APPROVED, history=history(revisions),
        refusal=refusal, done=views.done(request, DONE),
        stance_errors=_stance_errors(refusal, rows),
        **_editor(note, form))


async def save(request: Request, form: FormData) -> Response:
    web.require_role(request, "analyst")
    st = await web.stubs(request)
    note, rows = _note_from(form, request.path_params["note_id"])
    return await views.attempt(
        st.research.UpdateNote(rapi.UpdateNoteRequest(note=note), metadata=st.metadata),
        f"/notes/{note.id}?done=saved", lambda why: note_page(request, why, form, 400, rows))


async def _step(request: Request, call: ItemCall, done: str) -> Response:
    """Submit or publish the note: research's `call`, then the note's page with `done`'s
    notice, or with research's refusal."""
    web.require_role(request, "analyst")
    st = await web.stubs(request)
    note_id = request.path_params["note_id"]
    return await views.attempt(call(st, note_id), f"/notes/{note_id}?done={done}",
                               lambda why: note_page(request, why, None, 400))


async def submit(request: Request, form: FormData) -> Response:
    return await _step(request, lambda st, note_id: st.research.SubmitNote(
        rapi.SubmitNoteRequest(id=note_id), metadata=st.metadata), "submitted")


async def publish(request: Request, form: FormData) -> Response:
    return await _step(request, lambda st, note_id: st.research.PublishNote(
        rapi.PublishNoteRequest(id=note_id), metadata=st.metadata), "published")


ROUTES = [
    Route("/notes", notes, methods=["GET"]),
    Route("/notes", web.form_handler(create), methods=["POST"]),
    Route("/notes/new", new_note, methods=["GET"]),
    Route("/notes/{note_id}", note_page, methods=["GET"]),
    Route("/notes/{note_id}", web.form_handler(save), methods=["POST"]),
    Route("/notes/{note_id}/submit", web.form_handler(submit), methods=["POST"]),
    Route("/notes/{note_id}/publish", web.form_handler(publish), methods=["POST"]),
]
NAV = [web.NavItem("/notes", N_("Research notes"), frozenset({"analyst"}))]

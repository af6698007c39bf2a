"""Quality inspection (质检, the insight service): the quality inspector's home
(`/inspections`: the queue of pending inspections, last month's sample drawn, the latest
scored and the open appeals), `/inspections/{id}` (the interaction and, for an inspector,
the scorecard to score it on: scored criteria 0-100, the securities checks pass or fail; a
failed check is raised to compliance by the service), and `/my-inspections` for the agents
and brokers inspected (their results and appeals; an appeal from the inspection's page).

Every rule is the insight service's: who may score (inspectors and supervisors, never their
own call), the weighted total, the flag, one open appeal at a time; the console only shows
what it says and puts a refused field's words beside it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

from branch.insight.v1 import insight_service_pb2 as iapi
from branch.insight.v1 import inspection_pb2 as K
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import views, web
from services.console.i18n import N_, _
from services.console.views import Refusal, name, request_id, today

INSPECTORS = ("quality_inspector", "supervisor")
INSPECTED = ("service_agent", "broker")
KINDS = {K.INTERACTION_KIND_TICKET: N_("hotline ticket"),
         K.INTERACTION_KIND_CALLBACK: N_("callback call"),
         K.INTERACTION_KIND_ADVISORY: N_("VIP advisory")}
TEAMS = {"service_agent": N_("Service agents"), "broker": N_("Brokers")}
APPEALS = {K.APPEAL_STATE_OPEN: N_("open"), K.APPEAL_STATE_UPHELD: N_("upheld"),
           K.APPEAL_STATE_REJECTED: N_("rejected")}
DONE = {"scored": N_("The inspection was scored."),
        "appealed": N_("Your appeal was sent; an inspector or supervisor will decide it."),
        "drawn": N_("Last month's sample was drawn.")}


def _common(request: Request) -> dict[str, Any]:
    return {"name": name, "from_ts": from_ts, "kind": lambda v: _(KINDS.get(v, "")),
            "team": lambda v: _(TEAMS.get(v) or v),
            "appeal_state": lambda v: _(APPEALS.get(v, "")),
            "done": views.done(request, DONE)}


def last_month(day: date) -> str:
    """The branch-local month before `day`'s, "YYYY-MM" (the latest a sample can be drawn of)."""
    return (day.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


async def queue_page(request: Request, *, status_code: int = 200,
                     error: Refusal | None = None) -> Response:
    web.require_role(request, *INSPECTORS)
    st = await web.stubs(request)
    md = st.metadata
    pending, scored, appeals = await asyncio.gather(
        st.insight.ListInspections(iapi.ListInspectionsRequest(
            state=K.INSPECTION_STATE_PENDING, page_size=200), metadata=md),
        st.insight.ListInspections(iapi.ListInspectionsRequest(
            state=K.INSPECTION_STATE_SCORED, page_size=20), metadata=md),
        st.insight.ListAppeals(iapi.ListAppealsRequest(state=K.APPEAL_STATE_OPEN,
                                                       page_size=50), metadata=md))
    queue = sorted(pending.inspections, key=lambda i: (i.month, i.interaction_time.seconds))
    return web.render(request, "pages/inspections/queue.html", status_code=status_code,
                      queue=queue, scored=list(scored.inspections),
                      appeals=list(appeals.appeals), error=error,
                      month=last_month(today(request)), **_common(request))


async def draw(request: Request, form: FormData) -> Response:
    """Draws last month's sample now (the service draws it on schedule too; once a month)."""
    web.require_role(request, *INSPECTORS)
    st = await web.stubs(request)
    return await views.attempt(
        st.insight.DrawSamples(iapi.DrawSamplesRequest(month=last_month(today(request))),
                               metadata=st.metadata),
        "/inspections?done=drawn", lambda why: queue_page(request, status_code=400, error=why))


async def inspection_page(request: Request, *, status_code: int = 200,
                          error: Refusal | None = None,
                          typed: dict[str, str] | None = None) -> Response:
    s = web.require_role(request, *INSPECTORS, *INSPECTED)
    st = await web.stubs(request)
    md = st.metadata
    ins = await st.insight.GetInspection(iapi.GetInspectionRequest(
        id=request.path_params["inspection_id"]), metadata=md)
    card, appeals = await asyncio.gather(
        st.insight.GetScorecard(iapi.GetScorecardRequest(id=ins.scorecard_id), metadata=md),
        st.insight.ListAppeals(iapi.ListAppealsRequest(page_size=200), metadata=md))
    mine = [a for a in appeals.appeals if a.inspection_id == ins.id]
    given = {sc.criterion_key: sc for sc in ins.scores}
    rows = [(c, given.get(c.key)) for c in card.criteria]
    is_inspector = bool(set(s.roles) & set(INSPECTORS))
    return web.render(
        request, "pages/inspections/inspection.html", status_code=status_code, ins=ins,
        rows=rows, appeals=mine, error=error, typed=typed or {},
        can_score=is_inspector and ins.state == K.INSPECTION_STATE_PENDING
        and ins.person_id != s.staff_id,
        can_appeal=ins.person_id == s.staff_id and ins.state == K.INSPECTION_STATE_SCORED
        and not any(a.state == K.APPEAL_STATE_OPEN for a in mine),
        is_inspector=is_inspector, request_id=str(uuid.uuid4()), **_common(request))


def _score(value: str) -> int:
    """A typed score; -1 when not a whole number, which the service refuses naming the
    criterion's field (its words, 0 to 100, beside the input)."""
    return int(value) if value.isdigit() and len(value) <= 3 else -1


async def score(request: Request, form: FormData) -> Response:
    web.require_role(request, *INSPECTORS)
    st = await web.stubs(request)
    inspection_id = request.path_params["inspection_id"]
    ins = await st.insight.GetInspection(iapi.GetInspectionRequest(id=inspection_id),
                                         metadata=st.metadata)
    card = await st.insight.GetScorecard(iapi.GetScorecardRequest(id=ins.scorecard_id),
                                         metadata=st.metadata)
    typed = {k: web.text(form, k) for k in form.keys() if isinstance(k, str)}
    unanswered = {f"passed_{c.key}": _("Say whether the call passed this check.")
                  for c in card.criteria if c.check and typed.get(f"passed_{c.key}") not in
                  ("0", "1")}
    if unanswered:  # a check left blank is not a failed one: ask, send nothing
        return await inspection_page(request, status_code=400, typed=typed, error=Refusal(
            _("Every securities check needs an answer."), unanswered))
    scores = [K.CriterionScore(
        criterion_key=c.key, score=0 if c.check else _score(typed.get(f"score_{c.key}", "")),
        passed=typed.get(f"passed_{c.key}") == "1", comment=typed.get(f"comment_{c.key}", ""))
        for c in card.criteria]
    return await views.attempt(
        st.insight.ScoreInspection(iapi.ScoreInspectionRequest(
            id=inspection_id, scores=scores, comment=typed.get("comment", "")),
            metadata=st.metadata),
        f"/inspections/{inspection_id}?done=scored",
        lambda why: inspection_page(request, status_code=400, error=why, typed=typed),
        # scores[i].score names the i-th criterion sent: its input on this page
        names={f"scores[{i}].{part}": f"{part}_{c.key}"
               for i, c in enumerate(card.criteria) for part in ("score", "comment")})


async def appeal(request: Request, form: FormData) -> Response:
    web.require_role(request, *INSPECTED)
    st = await web.stubs(request)
    inspection_id = request.path_params["inspection_id"]
    typed = {n: web.text(form, n) for n in ("reason", "request_id")}
    return await views.attempt(
        st.insight.CreateAppeal(iapi.CreateAppealRequest(
            appeal=K.Appeal(inspection_id=inspection_id, reason=typed["reason"]),
            request_id=request_id(typed["request_id"])), metadata=st.metadata),
        f"/inspections/{inspection_id}?done=appealed",
        lambda why: inspection_page(request, status_code=400, error=why, typed=typed),
        prefix="appeal.")


async def mine(request: Request) -> Response:
    """The agent's or broker's own inspections (the service shows them only theirs)."""
    web.require_role(request, *INSPECTED)
    st = await web.stubs(request)
    own, appeals = await asyncio.gather(
        st.insight.ListInspections(iapi.ListInspectionsRequest(page_size=100),
                                   metadata=st.metadata),
        st.insight.ListAppeals(iapi.ListAppealsRequest(page_size=100), metadata=st.metadata))
    items = sorted(own.inspections, key=lambda i: (i.month, i.interaction_time.seconds),
                   reverse=True)
    return web.render(request, "pages/inspections/mine.html", inspections=items,
                      appeals=list(appeals.appeals), **_common(request))


ROUTES = [
    Route("/inspections", queue_page, methods=["GET"]),
    Route("/inspections/draw", web.form_handler(draw), methods=["POST"]),
    Route("/inspections/{inspection_id}", inspection_page, methods=["GET"]),
    Route("/inspections/{inspection_id}/score", web.form_handler(score), methods=["POST"]),
    Route("/inspections/{inspection_id}/appeal", web.form_handler(appeal), methods=["POST"]),
    Route("/my-inspections", mine, methods=["GET"]),
]
NAV = [web.NavItem("/inspections", N_("Inspections"), frozenset(INSPECTORS)),
       web.NavItem("/my-inspections", N_("My inspections"), frozenset(INSPECTED))]

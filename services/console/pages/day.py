"""The client manager's home (`/day`): today's plan, the quota progress (visits, rooms
patrolled) as the onsite service counts it, today's visits and patrols, the forms they
raised; forms to record a visit or a patrol and to raise a consultation form. Every figure
comes from the onsite service (GetCompliance); the console only shows it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from branch.onsite.v1 import consultation_pb2, day_pb2
from branch.onsite.v1 import onsite_service_pb2 as oapi
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import picker, views, web
from services.console.i18n import N_, _
from services.console.pages.forms import STATES as FORM_STATES
from services.console.views import Refusal, name, request_id

ROLE = "client_manager"
DONE = {"visit": N_("The visit was recorded."), "patrol": N_("The patrol was recorded."),
        "form": N_("The consultation form was raised; the consultant has it in their inbox.")}


async def day_page(request: Request, *, status_code: int = 200,
                   errors: dict[str, Refusal] | None = None,
                   typed: dict[str, dict[str, str]] | None = None) -> Response:
    s = web.require_role(request, ROLE)
    st = await web.stubs(request)
    md = st.metadata
    # today's visits and patrols asked for by date: a manager's history runs to hundreds,
    # and the first page of it holds the oldest, not today's
    local = views.today(request).isoformat()
    got: list[Any] = await asyncio.gather(
        st.onsite.GetDailyPlan(oapi.GetDailyPlanRequest(), metadata=md),
        st.onsite.GetCompliance(oapi.GetComplianceRequest(period=day_pb2.PERIOD_DAY),
                                metadata=md),
        st.onsite.ListVisits(oapi.ListVisitsRequest(client_manager_id=s.staff_id,
                                                    start_date=local, end_date=local,
                                                    page_size=100), metadata=md),
        st.onsite.ListPatrols(oapi.ListPatrolsRequest(client_manager_id=s.staff_id,
                                                      start_date=local, end_date=local,
                                                      page_size=100), metadata=md),
        st.onsite.ListConsultationForms(oapi.ListConsultationFormsRequest(
            client_manager_id=s.staff_id, page_size=50,
            states=[consultation_pb2.FORM_STATE_RAISED, consultation_pb2.FORM_STATE_ANALYSED]),
            metadata=md),
        picker.shown(st, picker.CLIENTS, "client_id", (typed or {}).get("visit", {})),
        picker.shown(st, picker.CLIENTS, "form_client_id", (typed or {}).get("form", {})),
        picker.shown(st, picker.CONSULTANTS, "consultant_id", (typed or {}).get("form", {})),
    )
    plan, compliance, visits, patrols, forms, visit_client, form_client, consultant = got
    row = compliance.rows[0] if compliance.rows else day_pb2.ComplianceRow()
    today = plan.plan_date
    todays_visits = [v for v in visits.visits if v.visit_date == today]
    todays_patrols = [p for p in patrols.patrols if p.patrol_date == today]
    return web.render(
        request, "pages/day/home.html", status_code=status_code, plan=plan, row=row,
        visits=todays_visits, patrols=todays_patrols, forms=list(forms.forms),
        visit_client=visit_client, form_client=form_client, consultant=consultant,
        errors=errors or {}, typed=typed or {}, name=name, from_ts=from_ts,
        form_state=lambda v: _(FORM_STATES.get(v, "")),
        done=views.done(request, DONE), request_id=str(uuid.uuid4()))


def _typed(form: FormData, *names: str) -> dict[str, str]:
    return {n: web.text(form, n) for n in (*names, "request_id")}


async def _again(request: Request, which: str, why: Refusal, typed: dict[str, str],
                 status_code: int = 400) -> Response:
    """The page again with form `which` as it was typed and why it did not go through."""
    return await day_page(request, status_code=status_code, errors={which: why},
                          typed={which: typed})


async def _to_choose(request: Request, which: str, typed: dict[str, str],
                     *picks: picker.Pick) -> Response | None:
    """The page again with the matches to choose from, when words were typed in a picker
    but nothing chosen (without script); None when every picker has its choice (in
    `typed` now, for the page shown again if the service refuses the form)."""
    for p in picks:
        typed[p.field] = p.chosen
    why = picker.to_choose(*picks)
    if why is None:
        return None
    return await _again(request, which, why, typed, status_code=200)


async def record_visit(request: Request, form: FormData) -> Response:
    web.require_role(request, ROLE)
    st = await web.stubs(request)
    typed = _typed(form, "client_id", "client_id_q", "room", "topics", "client_requests",
                   "follow_up_note")
    typed["follow_up_needed"] = "1" if form.get("follow_up_needed") else ""
    client = await picker.choose(st, form, picker.CLIENTS, "client_id")
    if choose := await _to_choose(request, "visit", typed, client):
        return choose
    topics = [t.strip() for t in typed["topics"].replace("，", ",").split(",") if t.strip()]
    return await views.attempt(
        st.onsite.RecordVisit(oapi.RecordVisitRequest(
            visit=day_pb2.Visit(client_id=client.chosen, room=typed["room"], topics=topics,
                                client_requests=typed["client_requests"],
                                follow_up_needed=bool(typed["follow_up_needed"]),
                                follow_up_note=typed["follow_up_note"]),
            request_id=request_id(typed["request_id"])), metadata=st.metadata),
        "/day?done=visit", lambda why: _again(request, "visit", why, typed), prefix="visit.")


async def record_patrol(request: Request, form: FormData) -> Response:
    web.require_role(request, ROLE)
    st = await web.stubs(request)
    typed = _typed(form, "room", "observations")
    return await views.attempt(
        st.onsite.RecordPatrol(oapi.RecordPatrolRequest(
            patrol=day_pb2.Patrol(room=typed["room"], observations=typed["observations"]),
            request_id=request_id(typed["request_id"])), metadata=st.metadata),
        "/day?done=patrol", lambda why: _again(request, "patrol", why, typed),
        prefix="patrol.")


async def raise_form(request: Request, form: FormData) -> Response:
    web.require_role(request, ROLE)
    st = await web.stubs(request)
    typed = _typed(form, "form_client_id", "form_client_id_q", "consultant_id",
                   "consultant_id_q", "request_note")
    client = await picker.choose(st, form, picker.CLIENTS, "form_client_id")
    consultant = await picker.choose(st, form, picker.CONSULTANTS, "consultant_id")
    if choose := await _to_choose(request, "form", typed, client, consultant):
        return choose
    return await views.attempt(
        st.onsite.RaiseConsultationForm(oapi.RaiseConsultationFormRequest(
            client_id=client.chosen, consultant_id=consultant.chosen,
            request_note=typed["request_note"],
            request_id=request_id(typed["request_id"])), metadata=st.metadata),
        "/day?done=form", lambda why: _again(request, "form", why, typed),
        names={"client_id": "form_client_id"})  # the picker's name on this page


ROUTES = [
    Route("/day", day_page, methods=["GET"]),
    Route("/day/visits", web.form_handler(record_visit), methods=["POST"]),
    Route("/day/patrols", web.form_handler(record_patrol), methods=["POST"]),
    Route("/day/forms", web.form_handler(raise_form), methods=["POST"]),
]
NAV = [web.NavItem("/day", N_("My day"), frozenset({ROLE}))]

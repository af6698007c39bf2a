"""The consultant's home (`/forms`): the consultation forms inbox, each with the holdings
snapshot taken when it was raised; `/forms/{id}` to write the analysis and advice. The
suitability check is the onsite service's: advice above the client's tolerance (or with an
expired assessment) is refused in the service's words beside the risk level, and goes
through only with an override reason, which the service records and flags."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from branch.onsite.v1 import consultation_pb2
from branch.onsite.v1 import onsite_service_pb2 as oapi
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import i18n, views, web
from services.console.backend import error_message
from services.console.i18n import N_, _
from services.console.views import Refusal, name

# the roles the onsite service lets analyse a form
ANALYSTS = ("consultant", "supervisor")
OPEN = (consultation_pb2.FORM_STATE_RAISED, consultation_pb2.FORM_STATE_ANALYSED)
STATES = {
    consultation_pb2.FORM_STATE_RAISED: N_("waiting for analysis"),
    consultation_pb2.FORM_STATE_ANALYSED: N_("analysed, to deliver"),
    consultation_pb2.FORM_STATE_DELIVERED: N_("delivered"),
    consultation_pb2.FORM_STATE_CANCELLED: N_("cancelled"),
}


def level(value: int) -> str:
    return f"R{value}" if 1 <= value <= 5 else ""


def tolerance(value: int) -> str:
    return f"C{value}" if 1 <= value <= 5 else _("not assessed")


def _common() -> dict[str, Any]:
    return {"name": name, "from_ts": from_ts, "level": level, "tolerance": tolerance,
            "state": lambda v: _(STATES.get(v, "")), "number": i18n.number}


async def inbox(request: Request) -> Response:
    s = web.require_role(request, "consultant")
    st = await web.stubs(request)
    waiting, analysed = await asyncio.gather(
        st.onsite.ListConsultationForms(oapi.ListConsultationFormsRequest(
            consultant_id=s.staff_id, states=[consultation_pb2.FORM_STATE_RAISED],
            page_size=100), metadata=st.metadata),
        st.onsite.ListConsultationForms(oapi.ListConsultationFormsRequest(
            consultant_id=s.staff_id, states=[consultation_pb2.FORM_STATE_ANALYSED],
            page_size=50), metadata=st.metadata))
    forms = sorted(waiting.forms, key=lambda f: f.deadline.seconds)
    return web.render(request, "pages/forms/inbox.html", forms=forms,
                      analysed=list(analysed.forms), **_common())


async def form_page(request: Request, *, status_code: int = 200, error: Refusal | None = None,
                    typed: dict[str, Any] | None = None) -> Response:
    web.require_role(request, *ANALYSTS)
    st = await web.stubs(request)
    form_id = request.path_params["form_id"]
    form = await st.onsite.GetConsultationForm(oapi.GetConsultationFormRequest(id=form_id),
                                               metadata=st.metadata)
    notes_problem = ""
    notes = oapi.ListRelevantNotesResponse()
    try:
        notes = await st.onsite.ListRelevantNotes(oapi.ListRelevantNotesRequest(
            form_id=form_id, page_size=50), metadata=st.metadata)
    except grpc.aio.AioRpcError as err:
        notes_problem = (_("Research is not answering; notes cannot be listed now.")
                         if err.code() == grpc.StatusCode.UNAVAILABLE
                         else error_message(err, i18n.current()))
    return web.render(request, "pages/forms/form.html", status_code=status_code, form=form,
                      notes=notes, notes_problem=notes_problem, error=error,
                      typed=typed or {}, can_analyse=form.state in OPEN,
                      done=request.query_params.get("done") == "1", **_common())


async def analyse(request: Request, form: FormData) -> Response:
    web.require_role(request, *ANALYSTS)
    st = await web.stubs(request)
    form_id = request.path_params["form_id"]
    typed: dict[str, Any] = {n: web.text(form, n) for n in (
        "analysis", "advice", "advice_risk_level", "suitability_override_reason")}
    typed["note_ids"] = [str(n) for n in form.getlist("note_ids")]
    risk = typed["advice_risk_level"]

    async def again(why: Refusal) -> Response:
        if why.reason == "SUITABILITY_MISMATCH":
            # the service's words, beside the risk level and the override reason
            why.fields.setdefault("advice_risk_level", why.message)
            why.fields.setdefault("suitability_override_reason", _(
                "To give this advice anyway, write why; the override is recorded and "
                "flagged for supervisors."))
        return await form_page(request, status_code=400, error=why, typed=typed)

    return await views.attempt(
        st.onsite.AnalyseConsultationForm(oapi.AnalyseConsultationFormRequest(
            id=form_id, analysis=typed["analysis"], advice=typed["advice"],
            advice_risk_level=int(risk) if risk.isdigit() else 0,  # type: ignore[arg-type]
            note_ids=typed["note_ids"],
            suitability_override_reason=typed["suitability_override_reason"]),
            metadata=st.metadata),
        f"/forms/{form_id}?done=1", again)


ROUTES = [
    Route("/forms", inbox, methods=["GET"]),
    Route("/forms/{form_id}", form_page, methods=["GET"]),
    Route("/forms/{form_id}/analysis", web.form_handler(analyse), methods=["POST"]),
]
NAV = [web.NavItem("/forms", N_("Forms inbox"), frozenset({"consultant"}))]

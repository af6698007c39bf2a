"""The service agent's home (`/desk`): the next callback (client, phone, the campaign's
script, the outcome), the ticket desk with SLA badges and clocks, a ticket opened from a
caller's phone number (the remote service asks the directory who it is), and
`/tickets/{id}` to respond and resolve. The SLA targets, due times (business days where the
policy says so) and warnings are the remote service's; the console only words them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_timedelta
from branch.remote.v1 import campaign_pb2, ticket_pb2
from branch.remote.v1 import remote_service_pb2 as rapi
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from services.common.protos import from_ts, ts
from services.console import i18n, views, web
from services.console.i18n import N_, _
from services.console.views import Refusal, name, request_id, typed_time

ROLE = "service_agent"
DESK_ROLES = ("service_agent", "supervisor")
LINES = {ticket_pb2.LINE_INVESTMENT: N_("Investment consulting"),
         ticket_pb2.LINE_TECHNICAL: N_("Technical support")}
PRIORITIES = {ticket_pb2.PRIORITY_NORMAL: N_("normal"), ticket_pb2.PRIORITY_URGENT: N_("urgent")}
TICKET_STATES = {
    ticket_pb2.TICKET_STATE_OPEN: N_("open, no response yet"),
    ticket_pb2.TICKET_STATE_IN_PROGRESS: N_("in progress"),
    ticket_pb2.TICKET_STATE_WAITING: N_("waiting"),
    ticket_pb2.TICKET_STATE_RESOLVED: N_("resolved, follow-up due"),
    ticket_pb2.TICKET_STATE_CLOSED: N_("closed"),
}
OUTCOMES = {
    campaign_pb2.CALLBACK_OUTCOME_REACHED: N_("Reached the client"),
    campaign_pb2.CALLBACK_OUTCOME_NO_ANSWER: N_("No answer"),
    campaign_pb2.CALLBACK_OUTCOME_CALL_BACK_LATER: N_("Asked to be called later"),
    campaign_pb2.CALLBACK_OUTCOME_DECLINED: N_("Declined"),
    campaign_pb2.CALLBACK_OUTCOME_WRONG_NUMBER: N_("Wrong number"),
}
ACTIVITY = {"opened": N_("opened"), "responded": N_("responded"), "paused": N_("paused"),
            "resumed": N_("resumed"), "transferred": N_("transferred"),
            "resolved": N_("resolved"), "follow_up": N_("follow-up call"),
            "reopened": N_("reopened"), "closed": N_("closed"), "warned": N_("SLA warning"),
            "escalated": N_("escalated"), "substitute": N_("substitute working it"),
            "vip_linked": N_("VIP advisory opened"), "reminded": N_("reminded")}
DONE = {"callback": N_("The call was recorded."),
        "none": N_("No callback is due for you now.")}


@dataclass
class Clock:
    """One SLA target in words: its badge (ok / warn / bad / done / paused), what it says,
    when it falls due in the branch zone and how far that is from now."""

    label: str
    badge: str
    status: str
    due: str
    relative: str
    business_days: bool


def time_left(c: ticket_pb2.SlaClock, due: datetime | None, now: datetime) -> str:
    """How much of the clock's time is left (or past due), in words: the service's count
    (remaining_seconds: business time where the clock counts business days, so a weekend
    does not shrink it), else the wall-clock distance to the due time."""
    lang = i18n.current()
    if c.HasField("remaining_seconds"):
        left = c.remaining_seconds
        span = format_timedelta(timedelta(seconds=abs(left)), threshold=2, locale=lang)
        if c.business_days:
            return (_("{span} of business time left") if left > 0
                    else _("{span} of business time overdue")).format(span=span)
        return (_("{span} left") if left > 0 else _("{span} overdue")).format(span=span)
    return format_timedelta(due - now, add_direction=True, threshold=2,
                            locale=lang) if due else ""


def sla_clock(label: str, c: ticket_pb2.SlaClock, now: datetime) -> Clock:
    """The service's clock as it stands: met, paused, breached (the service said so, or its
    due time has passed), at risk (warned, or its warning time has passed), else on track."""
    due = from_ts(c.due_time) if c.HasField("due_time") else None
    warn = from_ts(c.warn_time) if c.HasField("warn_time") else None
    if c.HasField("met_time"):
        met = from_ts(c.met_time)
        late = c.breached
        return Clock(label, "bad" if late else "done",
                     _("met late") if late else _("met"), web.when(met), "", c.business_days)
    if c.paused:  # the service's time left is the one frozen at the pause
        return Clock(label, "paused", _("paused"), "",
                     time_left(c, None, now), c.business_days)
    relative = time_left(c, due, now)
    if c.breached or (due is not None and now >= due):
        badge, status = "bad", _("breached")
    elif c.warned or (warn is not None and now >= warn):
        badge, status = "warn", _("at risk")
    else:
        badge, status = "ok", _("on track")
    return Clock(label, badge, status, web.when(due), relative, c.business_days)


def overall(clocks: list[Clock]) -> Clock:
    """The ticket's badge: its worst running clock."""
    order = {"bad": 0, "warn": 1, "ok": 2, "paused": 3, "done": 4}
    return sorted(clocks, key=lambda c: order[c.badge])[0]


def _words() -> dict[str, Any]:
    return {"name": name, "from_ts": from_ts,
            "line": lambda v: _(LINES.get(v, "")),
            "priority": lambda v: _(PRIORITIES.get(v, "")),
            "ticket_state": lambda v: _(TICKET_STATES.get(v, "")),
            "outcome": lambda v: _(OUTCOMES.get(v, "")),
            "activity": lambda v: _(ACTIVITY.get(str(v), str(v))),
            "lines": [(k, _(v)) for k, v in LINES.items()],
            "priorities": [(k, _(v)) for k, v in PRIORITIES.items()],
            "outcomes": [(k, _(v)) for k, v in OUTCOMES.items()]}


def clocks_of(t: ticket_pb2.Ticket, now: datetime) -> list[Clock]:
    return [sla_clock(_("First response"), t.first_response, now),
            sla_clock(_("Resolution"), t.resolution, now)]


async def desk_page(request: Request, *, status_code: int = 200, error: Refusal | None = None,
                    typed: dict[str, str] | None = None) -> Response:
    s = web.require_role(request, *DESK_ROLES)
    st = await web.stubs(request)
    now = web.console(request).clock.now()
    mine, follow_ups = await asyncio.gather(
        st.remote.ListTickets(rapi.ListTicketsRequest(staff_id=s.staff_id, unresolved_only=True,
                                                      page_size=100), metadata=st.metadata),
        st.remote.ListTickets(rapi.ListTicketsRequest(staff_id=s.staff_id,
                                                      follow_up_due_only=True, page_size=50),
                              metadata=st.metadata))
    rows = [(t, overall(clocks_of(t, now)), clocks_of(t, now)) for t in mine.tickets]
    return web.render(request, "pages/desk/home.html", status_code=status_code, rows=rows,
                      follow_ups=list(follow_ups.tickets), error=error, typed=typed or {},
                      done=views.done(request, DONE),
                      request_id=str(uuid.uuid4()), **_words())


async def open_ticket(request: Request, form: FormData) -> Response:
    web.require_role(request, *DESK_ROLES)
    st = await web.stubs(request)
    typed = {n: web.text(form, n) for n in (
        "line", "priority", "caller_phone", "caller_name", "category", "summary",
        "description", "request_id")}
    typed["complaint"] = "1" if form.get("complaint") else ""
    ticket = ticket_pb2.Ticket(
        line=int(typed["line"]) if typed["line"].isdigit() else 0,  # type: ignore[arg-type]
        priority=int(typed["priority"]) if typed["priority"].isdigit() else 0,  # type: ignore[arg-type]
        caller_phone=typed["caller_phone"], caller_name=typed["caller_name"],
        category=typed["category"], summary=typed["summary"],
        description=typed["description"], complaint=bool(typed["complaint"]))
    return await views.attempt(
        st.remote.OpenTicket(rapi.OpenTicketRequest(
            ticket=ticket, request_id=request_id(typed["request_id"])), metadata=st.metadata),
        lambda made: f"/tickets/{made.id}?opened=1",
        lambda why: desk_page(request, status_code=400, error=why, typed=typed),
        prefix="ticket.")


# ---- the next callback ----------------------------------------------------------------------

async def _callback_page(request: Request, *, status_code: int = 200,
                         error: Refusal | None = None,
                         typed: dict[str, str] | None = None) -> Response:
    st = await web.stubs(request)
    # hands back the target this agent already holds, or claims the next one
    nxt = await st.remote.NextCallback(rapi.NextCallbackRequest(), metadata=st.metadata)
    if not nxt.HasField("target"):
        return RedirectResponse("/desk?done=none", status_code=303)
    earlier = await st.remote.ListCallbacks(rapi.ListCallbacksRequest(
        client_id=nxt.target.client_id, page_size=5), metadata=st.metadata)
    return web.render(request, "pages/desk/callback.html", status_code=status_code, nxt=nxt,
                      earlier=list(earlier.callbacks), error=error, typed=typed or {},
                      request_id=str(uuid.uuid4()), **_words())


async def next_callback(request: Request, form: FormData) -> Response:
    web.require_role(request, ROLE)
    return await _callback_page(request)


async def record_callback(request: Request, form: FormData) -> Response:
    web.require_role(request, ROLE)
    st = await web.stubs(request)
    typed = {n: web.text(form, n) for n in ("outcome", "notes", "callback_time", "request_id")}
    req = rapi.RecordCallbackRequest(
        target_id=request.path_params["target_id"],
        outcome=int(typed["outcome"]) if typed["outcome"].isdigit() else 0,  # type: ignore[arg-type]
        notes=typed["notes"], request_id=request_id(typed["request_id"]))
    later = typed_time(request, typed["callback_time"]) if typed["callback_time"] else None
    if later is not None:
        req.callback_time.CopyFrom(ts(later))
    return await views.attempt(
        st.remote.RecordCallback(req, metadata=st.metadata), "/desk?done=callback",
        lambda why: _callback_page(request, status_code=400, error=why, typed=typed))


# ---- one ticket -------------------------------------------------------------------------------

async def ticket_page(request: Request, *, status_code: int = 200,
                      error: Refusal | None = None, which: str = "") -> Response:
    web.require_role(request, *DESK_ROLES)
    st = await web.stubs(request)
    t = await st.remote.GetTicket(rapi.GetTicketRequest(id=request.path_params["ticket_id"]),
                                  metadata=st.metadata)
    now = web.console(request).clock.now()
    clocks = clocks_of(t, now)
    return web.render(request, "pages/desk/ticket.html", status_code=status_code, t=t,
                      clocks=clocks, badge=overall(clocks), error=error, which=which,
                      opened=request.query_params.get("opened") == "1", **_words())


async def ticket_action(request: Request, form: FormData) -> Response:
    web.require_role(request, *DESK_ROLES)
    st = await web.stubs(request)
    ticket_id = request.path_params["ticket_id"]
    action = request.path_params["action"]
    note = web.text(form, "note")
    call: Awaitable[ticket_pb2.Ticket]
    if action == "respond":
        call = st.remote.RespondTicket(rapi.RespondTicketRequest(id=ticket_id, note=note),
                                       metadata=st.metadata)
    elif action == "resolve":
        call = st.remote.ResolveTicket(rapi.ResolveTicketRequest(
            id=ticket_id, resolution_note=note), metadata=st.metadata)
    else:
        return await ticket_page(request, status_code=404)
    return await views.attempt(
        call, f"/tickets/{ticket_id}",
        lambda why: ticket_page(request, status_code=400, error=why, which=action),
        names={"resolution_note": "note"})  # the resolve form's box is `note`


ROUTES = [
    Route("/desk", desk_page, methods=["GET"]),
    Route("/desk/tickets", web.form_handler(open_ticket), methods=["POST"]),
    Route("/desk/callback", web.form_handler(next_callback), methods=["POST"]),
    Route("/desk/callback/{target_id}", web.form_handler(record_callback), methods=["POST"]),
    Route("/tickets/{ticket_id}", ticket_page, methods=["GET"]),
    Route("/tickets/{ticket_id}/{action}", web.form_handler(ticket_action), methods=["POST"]),
]
NAV = [web.NavItem("/desk", N_("Service desk"), frozenset({ROLE}))]

"""Client 360 (`/clients/{id}`): the client's profile from the directory, then holdings,
recent trades, visits, consultation forms, tickets, callbacks, advisories and relays, fetched
in parallel with the viewer's own token. The directory's GetClient decides whether the viewer
may see the client at all (a broker opening another broker's client is refused, 403); a
section the viewer's role may not read says so and the rest of the page still shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import grpc
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.onsite.v1 import onsite_service_pb2 as oapi
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.vip.v1 import vip_service_pb2 as vapi
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.common.units import trades_of
from services.console import enums, i18n, web
from services.console.backend import error_message
from services.console.i18n import N_, _

ROWS = 20
TRADE_DAYS = 90


@dataclass
class Section:
    """One box of the page: rows, or why there are none."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    problem: str = ""  # "" (ok), or words saying why nothing is shown


def _cell(msg: Message, name: str) -> str:
    """A field of a message as words: enums by their value name, times in the branch zone."""
    f = msg.DESCRIPTOR.fields_by_name[name]
    value = getattr(msg, name)
    if f.enum_type is not None and not f.is_repeated:
        return enums.label(f.enum_type, value)
    if f.message_type is not None and f.message_type.full_name == "google.protobuf.Timestamp":
        return web.when(from_ts(value))
    if f.is_repeated:
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return _("yes") if value else ""
    return str(value)


def _rows(items: Any, names: list[str]) -> list[list[str]]:
    return [[_cell(m, n) for n in names] for m in list(items)[:ROWS]]


async def _section(title: str, headers: list[str], names: list[str], call: Any,
                   attr: str) -> Section:
    sec = Section(_(title), [_(h) for h in headers])
    try:
        reply = await call
    except grpc.aio.AioRpcError as err:
        code = err.code()
        if code == grpc.StatusCode.PERMISSION_DENIED:
            sec.problem = _("Not in your scope.")
        elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                      grpc.StatusCode.UNIMPLEMENTED):
            sec.problem = _("The service is not answering; try again later.")
        else:
            sec.problem = error_message(err, i18n.current())
        return sec
    sec.rows = _rows(getattr(reply, attr), names)
    return sec


async def _trades(st: Any, client_id: str, now: Any) -> Section:
    sec = Section(_("Recent trades"), [_("Time"), _("Ticker"), _("Side"), _("Quantity"),
                                       _("Price"), _("Fee")])
    trades: list[Any] = []
    try:
        req = dapi.StreamTradesRequest(client_id=client_id)
        req.start_time.FromDatetime(now - timedelta(days=TRADE_DAYS))
        async for chunk in st.directory.StreamTrades(req, metadata=st.metadata, timeout=20):
            trades.extend(trades_of(chunk.columns))
    except grpc.aio.AioRpcError as err:
        sec.problem = (_("Not in your scope.")
                       if err.code() == grpc.StatusCode.PERMISSION_DENIED
                       else error_message(err, i18n.current()))
        return sec
    trades.sort(key=lambda t: t.trade_time.seconds, reverse=True)
    sec.rows = [[web.when(from_ts(t.trade_time)), t.ticker, _cell(t, "side"),
                 i18n.number(t.quantity), i18n.number(t.price, 2), i18n.number(t.fee, 2)]
                for t in trades[:ROWS]]
    return sec


async def client_360(request: Request) -> Response:
    client_id = request.path_params["client_id"]
    st = await web.stubs(request)
    # GetClient first: a client outside the viewer's scope is refused before anything else
    client: client_pb2.Client = await st.directory.GetClient(
        dapi.GetClientRequest(id=client_id), metadata=st.metadata)
    md = st.metadata
    now = web.console(request).clock.now()
    holdings_call = st.directory.ListHoldings(dapi.ListHoldingsRequest(client_id=client_id),
                                              metadata=md)
    sections = await asyncio.gather(
        _section(N_("Holdings"), [N_("Ticker"), N_("Quantity"), N_("Cost price"),
                                  N_("Market price"), N_("Risk level"), N_("As of")],
                 ["ticker", "quantity", "cost_price", "market_price", "risk_level", "as_of"],
                 holdings_call, "holdings"),
        _trades(st, client_id, now),
        _section(N_("Visits"), [N_("Time"), N_("Client manager"), N_("Room"), N_("Topics")],
                 ["visit_time", "client_manager_display_name", "room", "topics"],
                 st.onsite.ListVisits(oapi.ListVisitsRequest(client_id=client_id,
                                                             page_size=ROWS), metadata=md),
                 "visits"),
        _section(N_("Consultation forms"), [N_("Raised"), N_("State"), N_("Consultant"),
                                            N_("Deadline")],
                 ["raise_time", "state", "consultant_display_name", "deadline"],
                 st.onsite.ListConsultationForms(oapi.ListConsultationFormsRequest(
                     client_id=client_id, page_size=ROWS), metadata=md), "forms"),
        _section(N_("Tickets"), [N_("Opened"), N_("Line"), N_("State"), N_("Summary"),
                                 N_("Owner")],
                 ["open_time", "line", "state", "summary", "owner_display_name"],
                 st.remote.ListTickets(rapi.ListTicketsRequest(client_id=client_id,
                                                               page_size=ROWS), metadata=md),
                 "tickets"),
        _section(N_("Callbacks"), [N_("Called"), N_("Agent"), N_("Outcome"), N_("Notes")],
                 ["call_time", "agent_display_name", "outcome", "notes"],
                 st.remote.ListCallbacks(rapi.ListCallbacksRequest(client_id=client_id,
                                                                   page_size=ROWS),
                                         metadata=md), "callbacks"),
        _section(N_("Advisories"), [N_("Opened"), N_("State"), N_("Question"),
                                    N_("Answer due")],
                 ["open_time", "state", "question", "answer_due_time"],
                 st.vip.ListAdvisories(vapi.ListAdvisoriesRequest(client_id=client_id,
                                                                  page_size=ROWS),
                                       metadata=md), "advisories"),
        _section(N_("Research relays"), [N_("Created"), N_("Note"), N_("State"), N_("Due")],
                 ["create_time", "note_title", "state", "due_time"],
                 st.vip.ListRelays(vapi.ListRelaysRequest(client_id=client_id,
                                                          page_size=ROWS), metadata=md),
                 "relays"),
    )
    profile = [
        (_("Account number"), client.account_no),
        (_("Phone"), client.phone),
        (_("Channel"), _cell(client, "channel")),
        (_("Tier"), _cell(client, "tier")),
        (_("Risk tolerance"), _cell(client, "risk_tolerance")),
        (_("Risk assessed on"), client.risk_assessed_on + (
            " — " + _("expired") if client.risk_assessment_expired else "")),
        (_("Assessment age"), _age(client.risk_assessed_on, now)),
        (_("Operating style"), _cell(client, "operating_style")),
        (_("Commission rate"), client.commission_rate),
        (_("Opened on"), client.opened_on),
        (_("Status"), _cell(client, "status")),
    ]
    return web.render(request, "pages/clients/client.html", client=client, profile=profile,
                      sections=sections)


def _age(assessed_on: str, now: datetime) -> str:
    """How long ago the risk assessment was, in days ("" when its date is not one)."""
    try:
        days = (now.date() - date.fromisoformat(assessed_on)).days
    except ValueError:
        return ""
    return i18n.ngettext("{n} day", "{n} days", days).format(n=i18n.number(days))


ROUTES = [Route("/clients/{client_id}", client_360, methods=["GET"])]

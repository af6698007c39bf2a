"""Trading-record reports (`/reports`): the reports made, a form to make one for a client
and period, `/reports/{id}` with its figures and charts (ECharts, started by
static/charts.js from data-* attributes: no inline script), and `/reports/{id}/document`,
the remote service's own HTML report for the client, served sandboxed. Every figure is the
remote service's (ReportFigures); the console only draws it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1 import report_pb2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import i18n, picker, views, web
from services.console.i18n import N_, _
from services.console.views import Refusal, name, request_id, today

ROLES = ("service_agent", "supervisor")
STYLES = {report_pb2.TRADING_STYLE_SHORT_TERM: N_("short-term"),
          report_pb2.TRADING_STYLE_SWING: N_("swing"),
          report_pb2.TRADING_STYLE_LONG_TERM: N_("long-term"),
          report_pb2.TRADING_STYLE_UNDETERMINED: N_("undetermined")}
STATES = {report_pb2.REPORT_STATE_READY: N_("ready"),
          report_pb2.REPORT_STATE_DELIVERED: N_("delivered")}
# the service's own document: its inline <style> and SVG charts, nothing else, no script
DOCUMENT_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                "frame-ancestors 'none'")


async def reports_page(request: Request, *, status_code: int = 200,
                       error: Refusal | None = None,
                       typed: dict[str, str] | None = None) -> Response:
    web.require_role(request, *ROLES)
    st = await web.stubs(request)
    day = today(request)
    typed = typed or {"client_id": request.query_params.get("client", ""),
                      "period_start": day.replace(month=1, day=1).isoformat(),
                      "period_end": day.isoformat()}
    reports, client = await asyncio.gather(
        st.remote.ListReports(rapi.ListReportsRequest(page_size=50), metadata=st.metadata),
        picker.shown(st, picker.CLIENTS, "client_id", typed))
    return web.render(request, "pages/reports/list.html", status_code=status_code,
                      reports=list(reports.reports),
                      client=client,
                      error=error, typed=typed, name=name, from_ts=from_ts,
                      state=lambda v: _(STATES.get(v, "")), request_id=str(uuid.uuid4()))


async def create_report(request: Request, form: FormData) -> Response:
    web.require_role(request, *ROLES)
    st = await web.stubs(request)
    typed = {n: web.text(form, n) for n in ("client_id", "client_id_q", "period_start",
                                            "period_end", "request_id")}
    client = await picker.choose(st, form, picker.CLIENTS, "client_id")
    typed["client_id"] = client.chosen
    if why := picker.to_choose(client):
        return await reports_page(request, error=why, typed=typed)
    return await views.attempt(
        st.remote.CreateReport(rapi.CreateReportRequest(
            client_id=client.chosen, period_start=typed["period_start"],
            period_end=typed["period_end"], request_id=request_id(typed["request_id"])),
            metadata=st.metadata),
        lambda made: f"/reports/{made.id}",
        lambda why: reports_page(request, status_code=400, error=why, typed=typed))


def charts(f: report_pb2.ReportFigures) -> list[dict[str, Any]]:
    """What static/charts.js draws: one bar chart per figure the service gives by ticker."""
    complete = [t for t in f.tickers if not t.incomplete and t.realised_pnl]
    return [
        {"id": "chart-pnl", "title": _("Realised P&L by ticker (yuan)"),
         "labels": [t.ticker for t in complete],
         "data": [float(t.realised_pnl) for t in complete]},
        {"id": "chart-turnover", "title": _("Turnover by ticker (yuan)"),
         "labels": [t.ticker for t in f.tickers],
         "data": [float(t.turnover or 0) for t in f.tickers]},
    ]


async def report_detail(request: Request) -> Response:
    web.require_role(request, *ROLES)
    st = await web.stubs(request)
    r = await st.remote.GetReport(rapi.GetReportRequest(id=request.path_params["report_id"]),
                                  metadata=st.metadata)
    f = r.figures
    n = i18n.number
    summary = [
        (_("Trades"), _("{trades} ({buys} buys, {sells} sells)").format(
            trades=f.trades, buys=f.buys, sells=f.sells)),
        (_("Turnover"), n(f.turnover or 0, 2)), (_("Fees"), n(f.fees or 0, 2)),
        (_("Realised P&L"), n(f.realised_pnl, 2) if f.realised_pnl else _("unknown")),
        (_("Win rate"), f"{n(f.win_rate * 100, 1)} %"),
        (_("Average holding period"), _("{days} days").format(days=n(f.average_holding_days, 1))),
        (_("Trading style"), _(STYLES.get(f.style, ""))),
        (_("Portfolio value"), n(f.portfolio_value or 0, 2)),
        (_("Largest position"), f"{f.largest_position_ticker} ({n(f.concentration * 100, 1)} %)"
         if f.largest_position_ticker else ""),
        (_("Turnover ratio"), n(f.turnover_ratio, 2)),
    ]
    return web.render(request, "pages/reports/report.html", r=r, f=f, summary=summary,
                      charts=charts(f), name=name, from_ts=from_ts,
                      state=_(STATES.get(r.state, "")))


async def report_document(request: Request) -> Response:
    """The service's HTML report as the client receives it (sandboxed: no script runs)."""
    web.require_role(request, *ROLES)
    st = await web.stubs(request)
    r = await st.remote.GetReport(rapi.GetReportRequest(id=request.path_params["report_id"]),
                                  metadata=st.metadata)
    return HTMLResponse(r.html, headers={"Content-Security-Policy": DOCUMENT_CSP})


ROUTES = [
    Route("/reports", reports_page, methods=["GET"]),
    Route("/reports", web.form_handler(create_report), methods=["POST"]),
    Route("/reports/{report_id}", report_detail, methods=["GET"]),
    Route("/reports/{report_id}/document", report_document, methods=["GET"]),
]
NAV = [web.NavItem("/reports", N_("Reports"), frozenset({"service_agent"}))]

"""The supervisor's home (`/supervisor`): the branch's figures as the services count them,
charted with ECharts (static/charts.js reads each chart's data-* attributes: no inline
script), each chart's table beside it and every table downloadable as CSV; the overdue and
breached lists; the VIP rota's uncovered hours on a calendar; and the audit log of every
service with filters (`/supervisor/audit`, merged newest first as `branchctl audit` does).

Where each figure comes from (the console computes nothing but sums and ratios of these):
- SLA compliance over weeks: remote GetWeeklyStatistics (hotline tickets resolved within SLA,
  one call per week) and vip GetSlaReport (advisories acknowledged and answered in time);
- callbacks against quota: remote ListCampaigns (active) and GetCampaignProgress (each
  agent's calls today against the campaign's daily quota);
- consultation forms on time and visits against quota: onsite GetCompliance for the week
  (forms raised and overdue, visits and rooms against the quota, per client manager);
- research reach: research ListNoteReach (targeted, relayed, acknowledged per note);
- the weekly reports (周报) insight builds from every service's events: insight ListReports;
- overdue and breached: vip ListBreaches, remote ListTickets(breached_only), onsite
  ListConsultationForms(overdue_only);
- rota gaps: vip CheckRotaGaps (brokers, the next RotaDays days).

Each table is loaded by its own coroutine, so a CSV export asks only the services it needs;
a service that refuses or does not answer leaves its table saying why, the rest still shows.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
from branch.common.v1 import audit_pb2
from branch.common.v1.audit_pb2_grpc import AuditServiceStub
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import search_pb2
from branch.insight.v1 import insight_service_pb2 as iapi
from branch.insight.v1 import report_pb2
from branch.onsite.v1 import consultation_pb2, day_pb2
from branch.onsite.v1 import onsite_service_pb2 as oapi
from branch.remote.v1 import campaign_pb2, ticket_pb2
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.research.v1 import research_service_pb2 as sapi
from branch.vip.v1 import rota_pb2
from branch.vip.v1 import vip_service_pb2 as vapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.common.protos import from_ts
from services.console import enums, i18n, web
from services.console.backend import error_message
from services.console.i18n import N_, _
from services.console.views import name, today, zone

ROLES = ("supervisor",)
WEEKS = 8
ROTA_DAYS = 28
LIST_ROWS = 50
AUDIT_SERVICES = ("directory", "onsite", "remote", "vip", "research", "insight")
SERVICE_NAMES = {"directory": N_("directory service"), "onsite": N_("onsite service"),
                 "remote": N_("remote service"), "vip": N_("VIP service"),
                 "research": N_("research service"), "insight": N_("insight service")}


@dataclass
class Table:
    """One table of the dashboard: its rows as shown (and as exported), or why none."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    problem: str = ""
    extra: Any = None  # the reply itself, where the page draws more than the table


def _problem(err: grpc.aio.AioRpcError) -> str:
    if err.code() == grpc.StatusCode.PERMISSION_DENIED:
        return _("Not in your scope.")
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return _("The service is not answering; try again later.")
    return error_message(err, i18n.current())


R = TypeVar("R")


async def _reply(t: Table, call: Awaitable[R]) -> R | None:
    """What the services answered for table `t`; None, with the table saying why, when one
    refused or did not answer."""
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        t.problem = _problem(err)
        return None


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


Loader = Callable[[Any, date], Awaitable[Table]]


async def _sla_weeks(st: Any, day: date) -> Table:
    t = Table("sla", _("SLA compliance by week"),
              [_("Week of"), _("Hotline tickets resolved"), _("Resolved within SLA"),
               _("Hotline SLA %"), _("VIP advisories"), _("Advisory steps in time"),
               _("VIP SLA %")])
    weeks = [_monday(day) - timedelta(weeks=i) for i in reversed(range(WEEKS))]
    md = st.metadata
    stats = await _reply(t, asyncio.gather(*(st.remote.GetWeeklyStatistics(
        rapi.GetWeeklyStatisticsRequest(week_of=w.isoformat()), metadata=md) for w in weeks)))
    if stats is None:
        return t
    vip = await _reply(t, st.vip.GetSlaReport(vapi.GetSlaReportRequest(
        start_date=weeks[0].isoformat(), end_date=day.isoformat()), metadata=md))
    if vip is None:
        return t
    advisories: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in vip.rows:
        a = advisories[row.week_start]
        a[0] += row.advisories
        a[1] += row.acknowledged_in_time + row.answered_in_time
    for w, s in zip(weeks, stats, strict=True):
        resolved, within = s.total.tickets_resolved, s.total.resolved_within_sla
        count, in_time = advisories.get(w.isoformat(), [0, 0])
        t.rows.append([w.isoformat(), resolved, within, _pct(within, resolved), count,
                       in_time, _pct(in_time, 2 * count)])
    return t


async def _callbacks(st: Any, day: date) -> Table:
    t = Table("callbacks", _("Callbacks today against the daily quota"),
              [_("Agent"), _("Calls today"), _("Reached today"), _("Daily quota"),
               _("Days below quota")])
    md = st.metadata
    campaigns = await _reply(t, st.remote.ListCampaigns(rapi.ListCampaignsRequest(
        state=campaign_pb2.CAMPAIGN_STATE_ACTIVE, page_size=20), metadata=md))
    if campaigns is None:
        return t
    progress = await _reply(t, asyncio.gather(*(st.remote.GetCampaignProgress(
        rapi.GetCampaignProgressRequest(id=c.id), metadata=md) for c in campaigns.campaigns)))
    if progress is None:
        return t
    agents: dict[str, list[Any]] = {}
    for p in progress:
        for a in p.agents:
            row = agents.setdefault(a.agent_id, [name(a.agent_display_name), 0, 0, 0, 0])
            row[1] += a.made_today
            row[2] += a.reached_today
            row[3] += a.daily_quota
            row[4] += a.quota_missed_days
    t.rows = sorted(agents.values(), key=lambda r: str(r[0]))
    return t


async def _onsite_week(st: Any, day: date) -> Table:
    t = Table("onsite", _("This week's visits, patrols and consultation forms"),
              [_("Client manager"), _("Visits"), _("Visits quota"), _("Rooms patrolled"),
               _("Rooms quota"), _("Forms raised"), _("Forms overdue"), _("Forms on time %")])
    reply = await _reply(t, st.onsite.GetCompliance(oapi.GetComplianceRequest(
        period=day_pb2.PERIOD_WEEK, date=day.isoformat()), metadata=st.metadata))
    if reply is None:
        return t
    for r in sorted(reply.rows, key=lambda r: r.client_manager_display_name):
        t.rows.append([name(r.client_manager_display_name), r.visits_done, r.visits_quota,
                       r.rooms_patrolled, r.rooms_quota, r.forms_raised, r.forms_overdue,
                       _pct(r.forms_raised - r.forms_overdue, r.forms_raised)])
    return t


async def _reach(st: Any, day: date) -> Table:
    t = Table("reach", _("Research reach of the latest notes"),
              [_("Note"), _("Author"), _("Published"), _("Targeted"), _("Relayed"),
               _("Acknowledged"), _("Withheld for suitability")])
    reply = await _reply(t, st.research.ListNoteReach(sapi.ListNoteReachRequest(page_size=10),
                                                     metadata=st.metadata))
    if reply is None:
        return t
    for n in reply.reaches:
        t.rows.append([n.title, name(n.author_display_name), web.when(from_ts(n.publish_time)),
                       n.targeted, n.relayed, n.acknowledged, n.withheld_for_suitability])
    return t


async def _vip_breaches(st: Any, day: date) -> Table:
    t = Table("vip_breaches", _("VIP deadlines breached (last 30 days)"),
              [_("Breached"), _("Kind"), _("Client"), _("Broker"), _("Due"),
               _("Escalated to")])
    since = datetime.combine(day - timedelta(days=30), datetime.min.time(), UTC)
    req = vapi.ListBreachesRequest(page_size=LIST_ROWS)
    req.since_time.FromDatetime(since)
    reply = await _reply(t, st.vip.ListBreaches(req, metadata=st.metadata))
    if reply is None:
        return t
    for b in reply.breaches:
        t.rows.append([web.when(from_ts(b.breach_time)),
                       enums.label(vapi.BreachKind.DESCRIPTOR, b.kind),
                       name(b.client_display_name), name(b.broker_display_name),
                       web.when(from_ts(b.due_time)),
                       b.escalated_to_display_name if b.escalated_to_id else ""])
    return t


async def _tickets_breached(st: Any, day: date) -> Table:
    t = Table("tickets_breached", _("Hotline tickets past their SLA, unresolved"),
              [_("Opened"), _("Line"), _("Caller"), _("Summary"), _("Owner"), _("Escalation")])
    reply = await _reply(t, st.remote.ListTickets(rapi.ListTicketsRequest(
        breached_only=True, unresolved_only=True, page_size=LIST_ROWS), metadata=st.metadata))
    if reply is None:
        return t
    for k in reply.tickets:
        t.rows.append([web.when(from_ts(k.open_time)),
                       enums.label(ticket_pb2.Line.DESCRIPTOR, k.line),
                       k.client_display_name or k.caller_name, k.summary,
                       name(k.owner_display_name), k.escalation_level])
    return t


async def _forms_overdue(st: Any, day: date) -> Table:
    t = Table("forms_overdue", _("Consultation forms past their deadline"),
              [_("Raised"), _("Client"), _("Consultant"), _("Client manager"), _("Deadline"),
               _("State")])
    reply = await _reply(t, st.onsite.ListConsultationForms(oapi.ListConsultationFormsRequest(
        overdue_only=True, page_size=LIST_ROWS), metadata=st.metadata))
    if reply is None:
        return t
    for f in reply.forms:
        t.rows.append([web.when(from_ts(f.raise_time)), name(f.client_display_name),
                       name(f.consultant_display_name), name(f.client_manager_display_name),
                       web.when(from_ts(f.deadline)),
                       enums.label(consultation_pb2.FormState.DESCRIPTOR, f.state)])
    return t


async def _rota_gaps(st: Any, day: date) -> Table:
    t = Table("rota_gaps", _("Hours without a broker on the VIP rota"),
              [_("From"), _("To"), _("Hours")])
    reply = await _reply(t, st.vip.CheckRotaGaps(vapi.CheckRotaGapsRequest(
        role=rota_pb2.SHIFT_ROLE_BROKER, days=ROTA_DAYS), metadata=st.metadata))
    if reply is None:
        return t
    for g in reply.gaps:
        t.rows.append([web.when(from_ts(g.start_time)), web.when(from_ts(g.end_time)),
                       round(g.hours, 1)])
    t.extra = reply
    return t


async def _weekly_reports(st: Any, day: date) -> Table:
    t = Table("weekly_reports", _("Weekly reports (insight)"),
              [_("Week of"), _("Tickets closed"), _("Resolved within SLA"), _("SLA %"),
               _("Callbacks"), _("Callback target"), _("Visits"), _("Forms delivered"),
               _("Forms overdue"), _("Advisories answered"), _("Advisories late"),
               _("Research delivered")])
    reply = await _reply(t, st.insight.ListReports(iapi.ListReportsRequest(
        kind=report_pb2.REPORT_KIND_WEEKLY, page_size=WEEKS), metadata=st.metadata))
    if reply is None:
        return t
    for r in sorted(reply.reports, key=lambda r: r.period_start):
        f = r.figures
        t.rows.append([r.period_start, f.tickets_closed, f.resolved_within_sla,
                       float(f.sla_compliance_percent) if f.sla_compliance_percent else None,
                       f.callbacks, f.callback_target, f.visits, f.consultations_delivered,
                       f.consultations_overdue, f.advisories_answered, f.advisories_late,
                       f.research_delivered])
    return t


TABLES: dict[str, Loader] = {
    "sla": _sla_weeks, "callbacks": _callbacks, "onsite": _onsite_week, "reach": _reach,
    "vip_breaches": _vip_breaches, "tickets_breached": _tickets_breached,
    "forms_overdue": _forms_overdue, "rota_gaps": _rota_gaps,
    "weekly_reports": _weekly_reports,
}


def _chart(kind: str, title: str, labels: list[str], series: list[tuple[str, list[Any]]],
           unit: str = "") -> dict[str, str]:
    """The data-* attributes of one chart (static/charts.js draws it)."""
    return {"data-chart": kind, "data-title": title, "data-unit": unit,
            "data-labels": json.dumps(labels, ensure_ascii=False),
            "data-series": json.dumps([{"name": n, "values": v} for n, v in series],
                                      ensure_ascii=False)}


def _charts(tables: dict[str, Table]) -> list[tuple[str, str, dict[str, str]]]:
    """(id, caption, attributes) of each chart whose table has rows."""
    out = []
    sla = tables["sla"]
    if sla.rows:
        out.append(("chart-sla", sla.title, _chart(
            "line", sla.title, [r[0] for r in sla.rows],
            [(_("Hotline SLA %"), [r[3] for r in sla.rows]),
             (_("VIP SLA %"), [r[6] for r in sla.rows])], "%")))
    wr = tables["weekly_reports"]
    if wr.rows:
        out.append(("chart-weekly", wr.title, _chart(
            "bar", wr.title, [r[0] for r in wr.rows],
            [(_("Callbacks"), [r[4] for r in wr.rows]),
             (_("Callback target"), [r[5] for r in wr.rows]),
             (_("Forms overdue"), [r[8] for r in wr.rows]),
             (_("Advisories late"), [r[10] for r in wr.rows])])))
    cb = tables["callbacks"]
    if cb.rows:
        out.append(("chart-callbacks", cb.title, _chart(
            "bar", cb.title, [r[0] for r in cb.rows],
            [(_("Calls today"), [r[1] for r in cb.rows]),
             (_("Daily quota"), [r[3] for r in cb.rows])])))
    on = tables["onsite"]
    if on.rows:
        labels = [r[0] for r in on.rows]
        out.append(("chart-visits", _("Visits against the quota this week"), _chart(
            "bar", _("Visits against the quota this week"), labels,
            [(_("Visits"), [r[1] for r in on.rows]),
             (_("Visits quota"), [r[2] for r in on.rows])])))
        out.append(("chart-forms", _("Consultation forms on time this week"), _chart(
            "bar", _("Consultation forms on time this week"), labels,
            [(_("Forms raised"), [r[5] for r in on.rows]),
             (_("Forms overdue"), [r[6] for r in on.rows])])))
    reach = tables["reach"]
    if reach.rows:
        out.append(("chart-reach", reach.title, _chart(
            "bar", reach.title, [str(r[0])[:16] for r in reach.rows],
            [(_("Targeted"), [r[3] for r in reach.rows]),
             (_("Relayed"), [r[4] for r in reach.rows]),
             (_("Acknowledged"), [r[5] for r in reach.rows])])))
    return out


def _rota_calendar(table: Table, day: date) -> dict[str, str] | None:
    """A calendar of the next ROTA_DAYS days, each day's uncovered broker hours."""
    reply = table.extra
    if reply is None:
        return None
    rota_zone = ZoneInfo(reply.time_zone or "Asia/Shanghai")
    hours: dict[str, float] = defaultdict(float)
    for g in reply.gaps:
        start, end = from_ts(g.start_time), from_ts(g.end_time)
        if start is None or end is None:
            continue
        cur = start
        while cur < end:  # split a gap at local midnights
            local = cur.astimezone(rota_zone)
            midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(),
                                        rota_zone).astimezone(UTC)
            upto = min(end, midnight)
            hours[local.date().isoformat()] += (upto - cur).total_seconds() / 3600
            cur = upto
    first, last = day, day + timedelta(days=ROTA_DAYS - 1)
    values = [[d, round(h, 1)] for d, h in sorted(hours.items())]
    return {"data-chart": "calendar", "data-title": table.title, "data-unit": "h",
            "data-range": json.dumps([first.isoformat(), last.isoformat()]),
            "data-values": json.dumps(values)}


async def dashboard(request: Request) -> Response:
    web.require_role(request, *ROLES)
    st = await web.stubs(request)
    day = today(request)
    loaded = await asyncio.gather(*(load(st, day) for load in TABLES.values()))
    tables = {t.key: t for t in loaded}
    return web.render(request, "pages/supervisor/home.html", tables=tables,
                      charts=_charts(tables), rota=_rota_calendar(tables["rota_gaps"], day),
                      day=day, order=list(TABLES))


def _csv(filename: str, columns: list[str], rows: list[list[Any]]) -> Response:
    out = io.StringIO()
    out.write("\ufeff")  # a BOM: spreadsheet programs then read the Chinese as UTF-8
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in r] for r in rows])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


async def export(request: Request) -> Response:
    """`/supervisor/export/<table>.csv`: one table of the dashboard as CSV (UTF-8)."""
    web.require_role(request, *ROLES)
    key = request.path_params["table"]
    if key not in TABLES:
        raise HTTPException(404, _("There is no such table."))
    st = await web.stubs(request)
    t = await TABLES[key](st, today(request))
    if t.problem:
        raise HTTPException(403 if t.problem == _("Not in your scope.") else 404, t.problem)
    return _csv(f"{key}-{today(request).isoformat()}.csv", t.columns, t.rows)


@dataclass
class AuditFilter:
    service: str = ""
    staff: str = ""  # an employee number or a staff id
    method: str = ""
    since: str = ""  # a branch-local date


async def _audit(request: Request, f: AuditFilter) -> tuple[Table, list[str]]:
    """Audit records of every service (or one), newest first, and the services that did not
    answer."""
    st = await web.stubs(request)
    t = Table("audit", _("Audit log"), [_("Time"), _("Service"), _("Staff"), _("Method"),
                                        _("Resource"), _("Outcome"), _("Request id")])
    staff_id = f.staff
    if f.staff and not f.staff.count("-"):  # an employee number: the directory knows its id
        found = await st.directory.SearchStaff(search_pb2.SearchStaffRequest(query=f.staff,
                                                                       page_size=5),
                                               metadata=st.metadata)
        exact = [m.id for m in found.results if m.employee_no == f.staff]
        staff_id = exact[0] if exact else f.staff
    req = audit_pb2.ListAuditRecordsRequest(page_size=200, staff_id=staff_id, method=f.method)
    services = [f.service] if f.service in AUDIT_SERVICES else list(AUDIT_SERVICES)
    channels = web.console(request).backend.channels

    async def one(service: str) -> list[audit_pb2.AuditRecord]:
        stub: Any = AuditServiceStub(channels[service])
        reply = await stub.ListAuditRecords(req, metadata=st.metadata, timeout=10)
        return list(reply.audit_records)

    async def names() -> dict[str, str]:
        """staff id -> "name (employee number)" for the Staff column; ids when refused."""
        try:
            reply = await st.directory.ListStaff(dapi.ListStaffRequest(page_size=1000),
                                                 metadata=st.metadata)
        except grpc.aio.AioRpcError:
            return {}
        return {p.id: f"{p.display_name} ({p.employee_no})" for p in reply.staff}

    who, answers = await asyncio.gather(
        names(), asyncio.gather(*(one(s) for s in services), return_exceptions=True))
    since = None
    if f.since:
        try:
            since = datetime.combine(date.fromisoformat(f.since), datetime.min.time(),
                                     zone(request)).astimezone(UTC)
        except ValueError:
            since = None
    rows: list[tuple[datetime, str, audit_pb2.AuditRecord]] = []
    silent = []
    for service, answer in zip(services, answers, strict=True):
        if isinstance(answer, grpc.aio.AioRpcError):
            silent.append(_(SERVICE_NAMES[service]))
            continue
        if isinstance(answer, BaseException):
            raise answer
        rows += [(from_ts(r.time) or datetime.min.replace(tzinfo=UTC), service, r)
                 for r in answer]
    rows = sorted((r for r in rows if since is None or r[0] >= since), key=lambda r: r[0],
                  reverse=True)[:200]
    t.rows = [[web.when(when), _(SERVICE_NAMES[service]), who.get(r.staff_id, r.staff_id),
               r.method, r.resource, r.outcome, r.request_id] for when, service, r in rows]
    return t, silent


def _filter(request: Request) -> AuditFilter:
    q = request.query_params
    return AuditFilter(service=q.get("service", ""), staff=q.get("staff", "").strip(),
                       method=q.get("method", "").strip(), since=q.get("since", "").strip())


def _filter_error(f: AuditFilter) -> str:
    """Why the filter cannot be used ("" when it can): an unknown service or a date that is
    not one. A filter that is not understood lists nothing rather than everything."""
    if f.service and f.service not in AUDIT_SERVICES:
        return _("No such service: {service}").format(service=f.service)
    if f.since:
        try:
            date.fromisoformat(f.since)
        except ValueError:
            return _("“Since” is not a date (YYYY-MM-DD): {since}").format(since=f.since)
    return ""


async def audit_page(request: Request) -> Response:
    web.require_role(request, *ROLES)
    f = _filter(request)
    error = _filter_error(f)
    silent: list[str] = []
    if error:
        table = Table("audit", _("Audit log"), [])
    else:
        table, silent = await _audit(request, f)
    query = "&".join(f"{k}={v}" for k, v in vars(f).items() if v)
    return web.render(request, "pages/supervisor/audit.html", table=table, f=f,
                      services=[(k, _(SERVICE_NAMES[k])) for k in AUDIT_SERVICES],
                      silent=silent, query=query, error=error,
                      status_code=400 if error else 200)


async def audit_csv(request: Request) -> Response:
    web.require_role(request, *ROLES)
    f = _filter(request)
    error = _filter_error(f)
    if error:
        return PlainTextResponse(error, status_code=400)
    table, _silent = await _audit(request, f)
    return _csv("audit.csv", table.columns, table.rows)


ROUTES = [
    Route("/supervisor", dashboard, methods=["GET"]),
    Route("/supervisor/export/{table}.csv", export, methods=["GET"]),
    Route("/supervisor/audit", audit_page, methods=["GET"]),
    Route("/supervisor/audit.csv", audit_csv, methods=["GET"]),
]
NAV = [web.NavItem("/supervisor", N_("Dashboard"), frozenset(ROLES)),
       web.NavItem("/supervisor/audit", N_("Audit log"), frozenset(ROLES))]

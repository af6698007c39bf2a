"""branchctl remote ...: an agent's day (next callback, record outcome, tickets) and a
supervisor's (campaigns, weekly statistics, breached tickets, regulatory progress)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branch.directory.v1 import client_pb2
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import report_pb2
from branch.remote.v1 import ticket_pb2 as tpb
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

from services.cli import when
from services.cli.argtypes import comma_list
from services.cli.branchctl import Ctl, clip, who
from services.cli.i18n import N_, Label, _
from services.cli.people import client_option, staff_list_option, staff_option
from services.cli.timefmt import local, timestamp
from services.common.protos import enum_name

if TYPE_CHECKING:
    from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceAsyncStub
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

LINES = {"investment": tpb.LINE_INVESTMENT, "technical": tpb.LINE_TECHNICAL}
PRIORITIES = {"normal": tpb.PRIORITY_NORMAL, "urgent": tpb.PRIORITY_URGENT}
OUTCOMES = {
    "reached": cpb.CALLBACK_OUTCOME_REACHED, "no-answer": cpb.CALLBACK_OUTCOME_NO_ANSWER,
    "wrong-number": cpb.CALLBACK_OUTCOME_WRONG_NUMBER,
    "call-back-later": cpb.CALLBACK_OUTCOME_CALL_BACK_LATER,
    "declined": cpb.CALLBACK_OUTCOME_DECLINED,
}
KINDS = {"general": cpb.CAMPAIGN_KIND_GENERAL, "new-accounts": cpb.CAMPAIGN_KIND_NEW_ACCOUNTS,
         "annual-sample": cpb.CAMPAIGN_KIND_ANNUAL_SAMPLE}
STATES = {"open": tpb.TICKET_STATE_OPEN, "in-progress": tpb.TICKET_STATE_IN_PROGRESS,
          "waiting": tpb.TICKET_STATE_WAITING, "resolved": tpb.TICKET_STATE_RESOLVED,
          "closed": tpb.TICKET_STATE_CLOSED}
PAUSES = {"caller": tpb.PAUSE_REASON_WAITING_CALLER,
          "third-party": tpb.PAUSE_REASON_WAITING_THIRD_PARTY}
CHANNELS = {"email": report_pb2.DELIVERY_CHANNEL_EMAIL, "post": report_pb2.DELIVERY_CHANNEL_POST,
            "app": report_pb2.DELIVERY_CHANNEL_APP, "fax": report_pb2.DELIVERY_CHANNEL_FAX}


def _stub(ctl: Ctl) -> RemoteServiceAsyncStub:
    return RemoteServiceStub(ctl.channel("remote"))


def _me(ctl: Ctl) -> str:
    import jwt

    return str(jwt.decode(ctl.token, options={"verify_signature": False})["sub"])


def _name(enum: _EnumTypeWrapper[Any], value: int, prefix: str) -> str:
    return enum_name(enum, value).removeprefix(prefix).lower().replace("_", "-")


def _clock(c: tpb.SlaClock) -> str:
    if c.met_time.seconds:
        state = f"met {local(c.met_time, empty='-')}"
    elif c.paused:
        state = "paused"
    else:
        state = f"due {local(c.due_time, empty='-')}"
    return state + (" BREACHED" if c.breached else " warned" if c.warned else "")


def _ticket_rows(tickets) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[t.id, _name(tpb.Line, t.line, "LINE_"), _name(tpb.Priority, t.priority, "PRIORITY_"),
             _name(tpb.TicketState, t.state, "TICKET_STATE_"), clip(t.summary, 30),
             who(t.client_display_name, t.client_id),
             who(t.owner_display_name, t.owner_id)
             + (f" (sub {who(t.substitute_display_name, t.substitute_id)})"
                if t.substitute_id else ""),
             (t.handler_department or "-"), _clock(t.first_response), _clock(t.resolution),
             str(t.escalation_level or "-"), "yes" if t.complaint else ""] for t in tickets]


TICKET_COLUMNS = ["id", "line", "prio", "state", "summary", "client", "owner", "handled by",
                  "first response", "resolution", "esc", "complaint"]


# ---- an agent's day --------------------------------------------------------------------------

async def day(args: argparse.Namespace, ctl: Ctl) -> None:
    stub, me = _stub(ctl), _me(ctl)
    campaigns = await stub.ListCampaigns(api.ListCampaignsRequest(
        state=cpb.CAMPAIGN_STATE_ACTIVE), metadata=ctl.metadata)
    rows = []
    for c in campaigns.campaigns:
        p = await stub.GetCampaignProgress(api.GetCampaignProgressRequest(id=c.id),
                                           metadata=ctl.metadata)
        mine = next((a for a in p.agents if a.agent_id == me), None)
        rows.append([c.id, c.name, _name(cpb.CampaignKind, c.kind, "CAMPAIGN_KIND_"),
                     f"{mine.made_today if mine else 0}/{c.daily_quota}",
                     str(mine.reached_today if mine else 0), str(p.pending), str(p.done)])
    ctl.table(_("my campaigns today ({day})").format(day=p.day if campaigns.campaigns else ''),
              ["id", "name", "kind", "made/quota", "reached", "pending", "done"], rows)
    open_ = await stub.ListTickets(api.ListTicketsRequest(staff_id=me, unresolved_only=True,
                                                          page_size=100), metadata=ctl.metadata)
    ctl.table("my open tickets", TICKET_COLUMNS, _ticket_rows(open_.tickets))
    due = await stub.ListTickets(api.ListTicketsRequest(staff_id=me, follow_up_due_only=True,
                                                        page_size=100), metadata=ctl.metadata)
    ctl.table("follow-up callbacks due", ["id", "summary", "resolved", "follow-up due"],
              [[t.id, clip(t.summary), local(t.resolution.met_time, empty="-"),
                local(t.follow_up_due_time, empty="-")] for t in due.tickets])


async def next_callback(args: argparse.Namespace, ctl: Ctl) -> None:
    got = await _stub(ctl).NextCallback(api.NextCallbackRequest(campaign_id=args.campaign or ""),
                                        metadata=ctl.metadata)
    if not got.target.id:
        ctl.console.print(_("nothing due in your queues right now"))
        return
    t = got.target
    ctl.table(_("call now: {campaign}").format(campaign=got.campaign.name),
              ["target", "client", "name", "phone", "attempts", "due by", "hold until"],
              [[t.id, t.client_id, got.client_name, got.client_phone, str(t.attempts),
                t.due_date or "-", local(t.lease_expire_time, empty="-")]])
    ctl.console.print(_("purpose: {purpose}").format(purpose=got.campaign.purpose))
    ctl.console.print(_("record with: branchctl remote record {id} reached --notes ...")
                      .format(id=t.id))


async def record(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.RecordCallbackRequest(target_id=args.target, outcome=OUTCOMES[args.outcome],
                                    notes=args.notes or "", request_id=args.request_id or "")
    if args.callback_at:
        req.callback_time.CopyFrom(timestamp(args.callback_at))
    if args.called_at:
        req.call_time.CopyFrom(timestamp(args.called_at))
    rec = await _stub(ctl).RecordCallback(req, metadata=ctl.metadata)
    ctl.console.print(_("recorded {id}: {outcome}").format(id=rec.id, outcome=args.outcome))


async def duty(args: argparse.Namespace, ctl: Ctl) -> None:
    agent = await _stub(ctl).SetAgentDuty(api.SetAgentDutyRequest(
        staff_id=args.staff or _me(ctl), lines=[LINES[x] for x in args.lines.split(",") if x],
        on_duty=not args.off), metadata=ctl.metadata)
    ctl.console.print((_("{staff}: on duty") if agent.on_duty else _("{staff}: off duty"))
                      .format(staff=agent.staff_id))


async def absence(args: argparse.Namespace, ctl: Ctl) -> None:
    agent = await _stub(ctl).SetAgentAbsence(api.SetAgentAbsenceRequest(
        staff_id=args.staff or _me(ctl), absent=not args.back,
        substitute_id=args.substitute or ""), metadata=ctl.metadata)
    ctl.console.print((_("{staff}: absent, {substitute} substitutes") if agent.absent
                       else _("{staff}: back")).format(staff=agent.staff_id,
                                                       substitute=agent.substitute_id))


async def open_ticket(args: argparse.Namespace, ctl: Ctl) -> None:
    t = tpb.Ticket(line=LINES[args.line], priority=PRIORITIES[args.priority],
                   summary=args.summary, description=args.description or "",
                   category=args.category or "", caller_name=args.caller or "",
                   caller_phone=args.phone or "", client_id=args.client or "",
                   complaint=args.complaint)
    made = await _stub(ctl).OpenTicket(api.OpenTicketRequest(
        ticket=t, auto_assign=args.auto, request_id=args.request_id or ""),
        metadata=ctl.metadata)
    ctl.table("ticket opened", TICKET_COLUMNS, _ticket_rows([made]))


async def tickets(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListTicketsRequest(page_size=args.limit, breached_only=args.breached,
                                 follow_up_due_only=args.follow_up_due,
                                 complaint_only=args.complaints, page_token=args.page or "")
    if args.mine:
        req.staff_id = _me(ctl)
    if args.state:
        req.state = STATES[args.state]
    if args.line:
        req.line = LINES[args.line]
    resp = await _stub(ctl).ListTickets(req, metadata=ctl.metadata)
    ctl.table("tickets", TICKET_COLUMNS, _ticket_rows(resp.tickets))
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def breached(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListTickets(api.ListTicketsRequest(
        breached_only=True, unresolved_only=not args.all, page_size=200), metadata=ctl.metadata)
    ctl.table("breached tickets", TICKET_COLUMNS, _ticket_rows(resp.tickets))


async def show_ticket(args: argparse.Namespace, ctl: Ctl) -> None:
    t = await _stub(ctl).GetTicket(api.GetTicketRequest(id=args.id), metadata=ctl.metadata)
    ctl.table(_("ticket {id}").format(id=t.id), TICKET_COLUMNS, _ticket_rows([t]))
    tier = _name(client_pb2.Tier, t.client_tier, "TIER_") if t.client_tier else "unidentified"
    extra = [(Label("client"), f"{who(t.client_display_name, t.client_id)} ({tier})"),
             (Label("VIP advisory"), t.vip_advisory_id or "-"),
             (Label("follow-up due"), local(t.follow_up_due_time, empty="-")),
             (Label("satisfaction"), str(t.satisfaction or "-")),
             (Label("reopened"), str(t.reopen_count))]
    ctl.table("details", ["", ""], [list(x) for x in extra])
    ctl.table("history", ["time", "what", "who", "note"],
              [[local(a.time, empty="-"), a.kind, who(a.staff_display_name, a.staff_id),
                clip(a.note, 70)]
               for a in t.activities])


ACTION_TITLES = {"respond": N_("ticket responded"), "pause": N_("ticket paused"),
                 "resume": N_("ticket resumed"), "transfer": N_("ticket transferred"),
                 "resolve": N_("ticket resolved"), "reopen": N_("ticket reopened")}


async def ticket_action(args: argparse.Namespace, ctl: Ctl) -> None:
    stub, md = _stub(ctl), ctl.metadata
    action = args.action
    if action == "respond":
        t = await stub.RespondTicket(api.RespondTicketRequest(id=args.id, note=args.text),
                                     metadata=md)
    elif action == "pause":
        t = await stub.PauseTicket(api.PauseTicketRequest(id=args.id, reason=PAUSES[args.reason],
                                                          note=args.text or ""), metadata=md)
    elif action == "resume":
        t = await stub.ResumeTicket(api.ResumeTicketRequest(id=args.id, note=args.text or ""),
                                    metadata=md)
    elif action == "transfer":
        t = await stub.TransferTicket(api.TransferTicketRequest(
            id=args.id, department=args.department, handler_id=args.handler or "",
            note=args.text or ""), metadata=md)
    elif action == "resolve":
        t = await stub.ResolveTicket(api.ResolveTicketRequest(id=args.id,
                                                              resolution_note=args.text),
                                     metadata=md)
    elif action == "reopen":
        t = await stub.ReopenTicket(api.ReopenTicketRequest(id=args.id, reason=args.text),
                                    metadata=md)
    else:
        t = await stub.RecordFollowUp(api.RecordFollowUpRequest(
            id=args.id, outcome=OUTCOMES[args.outcome], satisfaction=args.satisfaction or 0,
            notes=args.text or ""), metadata=md)
    ctl.table(_(ACTION_TITLES.get(action, N_("ticket followed up"))), TICKET_COLUMNS,
              _ticket_rows([t]))


# ---- reports ---------------------------------------------------------------------------------

async def report_create(args: argparse.Namespace, ctl: Ctl) -> None:
    when.in_order(args.start, args.end, ("--start", "--end"))
    r = await _stub(ctl).CreateReport(api.CreateReportRequest(
        client_id=args.client, period_start=args.start, period_end=args.end,
        request_id=args.request_id or ""), metadata=ctl.metadata)
    f = r.figures
    # the id in a column too: -o json/csv has no title, and `remote report ID` needs it
    ctl.table(_("report {id}").format(id=r.id), ["id", "trades", "turnover", "realised P&L",
                                                 "win rate", "avg hold (d)", "largest",
                                                 "warnings"],
              [[r.id, str(f.trades), f.turnover, f.realised_pnl, f"{f.win_rate:.1%}",
                f"{f.average_holding_days:.1f}",
                f"{f.largest_position_ticker} {f.concentration:.0%}", str(len(f.warnings))]])


async def report_show(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).GetReport(api.GetReportRequest(id=args.id), metadata=ctl.metadata)
    if args.html:
        Path(args.html).write_text(r.html, encoding="utf-8")
        ctl.console.print(_("wrote {path}").format(path=args.html))
    else:
        ctl.console.print(r.markdown, markup=False, highlight=False)


async def report_deliver(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).DeliverReport(api.DeliverReportRequest(
        id=args.id, channel=CHANNELS[args.channel], delivered_to=args.to), metadata=ctl.metadata)
    when = local(r.deliver_time, empty="-")
    ctl.console.print(_("report {id} delivered by {channel} at {time}").format(
        id=r.id, channel=args.channel, time=when))


def _delivery(r: report_pb2.Report) -> str:
    if not r.delivered_by:
        return "-"
    channel = _name(report_pb2.DeliveryChannel, r.delivery_channel, "DELIVERY_CHANNEL_")
    return f"{local(r.deliver_time, empty='-')} {channel}"


async def reports(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListReports(api.ListReportsRequest(
        client_id=args.client or "", page_size=args.limit), metadata=ctl.metadata)
    ctl.table("reports", ["id", "client", "period", "state", "trades", "P&L", "delivered"],
              [[r.id, who(r.client_display_name, r.client_id), f"{r.period_start}..{r.period_end}",
                _name(report_pb2.ReportState, r.state, "REPORT_STATE_"), str(r.figures.trades),
                r.figures.realised_pnl,
                _delivery(r)] for r in resp.reports])


# ---- a supervisor's day ----------------------------------------------------------------------

async def campaign_create(args: argparse.Namespace, ctl: Ctl) -> None:
    rule = cpb.TargetRule(not_contacted_days=args.not_contacted_days or 0,
                          min_concentration=args.min_concentration or "",
                          risk_mismatch_only=args.risk_mismatch, max_targets=args.max_targets or 0)
    c = await _stub(ctl).CreateCampaign(api.CreateCampaignRequest(campaign=cpb.Campaign(
        name=args.name, purpose=args.purpose or "", kind=KINDS[args.kind],
        start_date=args.start, end_date=args.end,
        agent_ids=[a for a in args.agents.split(",") if a], daily_quota=args.quota,
        max_attempts=args.max_attempts or 0, retry_backoff_minutes=args.backoff or 0, rule=rule),
        request_id=args.request_id or ""), metadata=ctl.metadata)
    ctl.console.print(_("campaign {id}: {count} clients queued").format(id=c.id,
                                                                   count=c.target_count))


async def campaigns(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListCampaigns(api.ListCampaignsRequest(page_size=100),
                                          metadata=ctl.metadata)
    ctl.table("campaigns", ["id", "name", "kind", "period", "agents", "quota/day", "targets",
                            "state"],
              [[c.id, c.name, _name(cpb.CampaignKind, c.kind, "CAMPAIGN_KIND_"),
                f"{c.start_date}..{c.end_date}", str(len(c.agent_ids)), str(c.daily_quota),
                str(c.target_count), _name(cpb.CampaignState, c.state, "CAMPAIGN_STATE_")]
               for c in resp.campaigns])


async def campaign_show(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    if args.close:
        await stub.CloseCampaign(api.CloseCampaignRequest(id=args.id), metadata=ctl.metadata)
    p = await stub.GetCampaignProgress(api.GetCampaignProgressRequest(id=args.id),
                                       metadata=ctl.metadata)
    ctl.table(_("campaign {id} ({day})").format(id=args.id, day=p.day),
              ["targets", "pending", "in call", "done", "reached", "exhausted", "removed",
               "overdue"],
              [[str(x) for x in (p.targets, p.pending, p.claimed, p.done, p.reached,
                                 p.exhausted, p.removed, p.overdue)]])
    ctl.table("agents", ["agent", "today / quota", "reached today", "total", "reached total",
                         "days under quota"],
              [[who(a.agent_display_name, a.agent_id), f"{a.made_today}/{a.daily_quota}",
                str(a.reached_today),
                str(a.made_total), str(a.reached_total), str(a.quota_missed_days)]
               for a in p.agents])


async def stats(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(
        week_of=args.week_of or "", agent_id=args.agent or ""), metadata=ctl.metadata)
    cols = ["agent", "accepted", "escalated", "resolved", "within SLA", "callbacks",
            "reached", "reports", "complaints", "satisfaction"]

    def row(a: tpb.AgentWeek) -> list[str]:
        return [who(a.agent_display_name, a.agent_id) if a.agent_id else "TOTAL",
                str(a.tickets_accepted), str(a.tickets_escalated),
                str(a.tickets_resolved), str(a.resolved_within_sla), str(a.callbacks_made),
                str(a.callbacks_reached), str(a.reports_delivered), str(a.complaints),
                f"{a.average_satisfaction:.2f}" if a.average_satisfaction else "-"]

    ctl.table(_("week {start} .. {end} ({days} working days)").format(
        start=resp.week_start, end=resp.week_end, days=resp.working_days), cols,
              [row(a) for a in resp.agents] + [row(resp.total)])


async def regulatory(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).GetRegulatoryProgress(api.GetRegulatoryProgressRequest(
        year=args.year or 0), metadata=ctl.metadata)
    ctl.table(_("regulatory callbacks {year}").format(year=r.year), [Label("rule"), "figure"], [
        [Label("new accounts opened"), str(r.new_accounts)],
        [Label("  called within one month"), str(r.new_accounts_called_in_time)],
        [Label("  overdue (month passed, not reached)"), str(r.new_accounts_overdue)],
        [Label("  still within their month"), str(r.new_accounts_open)],
        [Label("clients on the books at last year end"), str(r.year_end_clients)],
        [Label("  reached this year"), str(r.year_end_clients_called)],
        [Label("  required (10%)"), str(r.year_end_required)],
        [Label("  gap"), str(r.year_end_gap)],
    ])


async def agents(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListAgents(api.ListAgentsRequest(page_size=200),
                                       metadata=ctl.metadata)
    ctl.table("agents", ["agent", "lines", "on duty", "active", "absent", "substitute",
                         "team lead"],
              [[who(a.staff_display_name, a.staff_id),
                ",".join(_name(tpb.Line, x, "LINE_") for x in a.lines),
                "yes" if a.on_duty else "", "yes" if a.active else "no",
                "yes" if a.absent else "", who(a.substitute_display_name, a.substitute_id),
                who(a.team_lead_display_name, a.team_lead_id)]
               for a in resp.agents])


async def sla(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    if args.line:
        await stub.UpdateSlaPolicy(api.UpdateSlaPolicyRequest(policy=tpb.SlaPolicy(
            line=LINES[args.line], priority=PRIORITIES[args.priority],
            first_response_minutes=args.first_response, resolution_minutes=args.resolution,
            resolution_business_days=args.business_days)), metadata=ctl.metadata)
    resp = await stub.ListSlaPolicies(api.ListSlaPoliciesRequest(), metadata=ctl.metadata)
    ctl.table("SLA targets", ["line", "priority", "first response (min)", "resolution (min)",
                              "weekdays only"],
              [[_name(tpb.Line, p.line, "LINE_"), _name(tpb.Priority, p.priority, "PRIORITY_"),
                str(p.first_response_minutes), str(p.resolution_minutes),
                "yes" if p.resolution_business_days else ""] for p in resp.policies])


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = groups.add_parser("remote", help=_("callbacks, reports and hotline tickets")
                          ).add_subparsers(dest="command", required=True)

    p = g.add_parser("day", help=_("an agent's day: quotas, open tickets, follow-ups due"))
    p.set_defaults(func=day)
    p = g.add_parser("next", help=_("take the next callback from your queues"))
    p.add_argument("--campaign")
    p.set_defaults(func=next_callback)
    p = g.add_parser("record", help=_("record a callback's outcome"))
    p.add_argument("target")
    p.add_argument("outcome", choices=sorted(OUTCOMES))
    p.add_argument("--notes")
    p.add_argument("--callback-at", type=when.moment,
                   help=_("when the client asked to be called: 'tomorrow 10am', "
                          "'YYYY-MM-DD HH:MM'"))
    p.add_argument("--called-at", type=when.moment,
                   help=_("when the call was made, if recorded later: 'now', '09:40'"))
    p.add_argument("--request-id")
    p.set_defaults(func=record)
    p = g.add_parser("duty", help=_("go on or off duty on lines"))
    p.add_argument("--lines", default="investment,technical", type=comma_list(LINES),
                   help="comma-separated: " + ",".join(sorted(LINES)))
    p.add_argument("--off", action="store_true")
    staff_option(p, "--staff", help="another agent (supervisors)")
    p.set_defaults(func=duty)
    p = g.add_parser("absent", help=_("mark absence and name a substitute (or --back)"))
    staff_option(p, "--substitute")
    p.add_argument("--back", action="store_true")
    staff_option(p, "--staff")
    p.set_defaults(func=absence)
    p = g.add_parser("open", help=_("open a hotline ticket"))
    p.add_argument("--line", choices=sorted(LINES), required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--priority", choices=sorted(PRIORITIES), default="normal")
    p.add_argument("--category")
    p.add_argument("--description")
    p.add_argument("--caller")
    p.add_argument("--phone")
    client_option(p, "--client")
    p.add_argument("--complaint", action="store_true")
    p.add_argument("--auto", action="store_true", help=_("assign round-robin to an agent on duty"))
    p.add_argument("--request-id")
    p.set_defaults(func=open_ticket)
    p = g.add_parser("tickets", help=_("list tickets"))
    p.add_argument("--mine", action="store_true")
    p.add_argument("--state", choices=sorted(STATES))
    p.add_argument("--line", choices=sorted(LINES))
    p.add_argument("--breached", action="store_true")
    p.add_argument("--follow-up-due", action="store_true")
    p.add_argument("--complaints", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--page")
    p.set_defaults(func=tickets)
    p = g.add_parser("ticket", help=_("one ticket with its SLA clocks and history"))
    p.add_argument("id")
    p.set_defaults(func=show_ticket)
    for action, action_help, text_help in (
            ("respond", N_("respond to a ticket"), N_("note")),
            ("resolve", N_("resolve a ticket"), N_("resolution")),
            ("reopen", N_("reopen a ticket"), N_("reason"))):
        p = g.add_parser(action, help=_(action_help))
        p.add_argument("id")
        p.add_argument("text", help=_(text_help))
        p.set_defaults(func=ticket_action, action=action)
    p = g.add_parser("pause", help=_("the ticket waits on the caller or a third party"))
    p.add_argument("id")
    p.add_argument("--reason", choices=sorted(PAUSES), required=True)
    p.add_argument("--text", help=_("note"))
    p.set_defaults(func=ticket_action, action="pause")
    p = g.add_parser("resume", help=_("the caller or third party answered"))
    p.add_argument("id")
    p.add_argument("--text", help=_("note"))
    p.set_defaults(func=ticket_action, action="resume")
    p = g.add_parser("transfer", help=_("another department works it; you stay the owner"))
    p.add_argument("id")
    p.add_argument("--department", required=True)
    p.add_argument("--handler")
    p.add_argument("--text", help=_("note"))
    p.set_defaults(func=ticket_action, action="transfer")
    p = g.add_parser("follow-up", help=_("record the follow-up callback after resolution"))
    p.add_argument("id")
    p.add_argument("--outcome", choices=sorted(OUTCOMES), default="reached")
    p.add_argument("--satisfaction", type=int, help=_("1..5"))
    p.add_argument("--text", help=_("notes"))
    p.set_defaults(func=ticket_action, action="follow-up")

    p = g.add_parser("report-create", help=_("build a client's trading-record report"))
    client_option(p, "client")
    p.add_argument("--start", required=True, type=when.day, help=_("YYYY-MM-DD"))
    p.add_argument("--end", required=True, type=when.day, help=_("YYYY-MM-DD"))
    p.add_argument("--request-id")
    p.set_defaults(func=report_create)
    p = g.add_parser("report", help=_("print a report (Markdown) or write its HTML"))
    p.add_argument("id")
    p.add_argument("--html", help=_("write the HTML document to this file"))
    p.set_defaults(func=report_show)
    p = g.add_parser("report-deliver", help=_("record a report's delivery"))
    p.add_argument("id")
    p.add_argument("--channel", choices=sorted(CHANNELS), required=True)
    p.add_argument("--to", required=True)
    p.set_defaults(func=report_deliver)
    p = g.add_parser("reports", help=_("list reports"))
    client_option(p, "--client")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=reports)

    p = g.add_parser("campaign-create", help=_("define a callback campaign (supervisor)"))
    p.add_argument("--name", required=True)
    p.add_argument("--kind", choices=sorted(KINDS), default="general")
    p.add_argument("--purpose")
    p.add_argument("--start", required=True, type=when.day, help=_("YYYY-MM-DD"))
    p.add_argument("--end", required=True, type=when.day, help=_("YYYY-MM-DD"))
    staff_list_option(p, "--agents", required=True, help="comma-separated agents")
    p.add_argument("--quota", type=int, required=True, help=_("callbacks per agent per day"))
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--backoff", type=int, help=_("first retry delay, minutes"))
    p.add_argument("--not-contacted-days", type=int)
    p.add_argument("--min-concentration", help=_("e.g. 0.5"))
    p.add_argument("--risk-mismatch", action="store_true")
    p.add_argument("--max-targets", type=int)
    p.add_argument("--request-id")
    p.set_defaults(func=campaign_create)
    p = g.add_parser("campaigns", help=_("list campaigns"))
    p.set_defaults(func=campaigns)
    p = g.add_parser("campaign", help=_("a campaign's progress per agent against quota"))
    p.add_argument("id")
    p.add_argument("--close", action="store_true", help=_("close it first"))
    p.set_defaults(func=campaign_show)
    p = g.add_parser("stats", help=_("weekly statistics per agent"))
    p.add_argument("--week-of", help=_("any day of the week, YYYY-MM-DD"))
    staff_option(p, "--agent")
    p.set_defaults(func=stats)
    p = g.add_parser("breached", help=_("tickets past an SLA target"))
    p.add_argument("--all", action="store_true", help=_("include resolved ones"))
    p.set_defaults(func=breached)
    p = g.add_parser("regulatory", help=_("distance from the regulator's callback rules"))
    p.add_argument("--year", type=int)
    p.set_defaults(func=regulatory)
    p = g.add_parser("agents", help=_("agents on the desk"))
    p.set_defaults(func=agents)
    p = g.add_parser("sla", help=_("show, or with --line set, SLA targets"))
    p.add_argument("--line", choices=sorted(LINES))
    p.add_argument("--priority", choices=sorted(PRIORITIES), default="normal")
    p.add_argument("--first-response", type=int, default=15)
    p.add_argument("--resolution", type=int, default=1440)
    p.add_argument("--business-days", action="store_true")
    p.set_defaults(func=sla)

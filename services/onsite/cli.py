"""branchctl onsite ...: a client manager's day, the consultants' forms, exchange meetings."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2
from branch.onsite.v1 import consultation_pb2 as cpb
from branch.onsite.v1 import day_pb2, meeting_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceStub
from branch.research.v1 import note_enums_pb2

from services.cli import when
from services.cli.argtypes import count, risk_level
from services.cli.branchctl import Ctl, clip, who
from services.cli.i18n import _
from services.cli.people import client_option, resolve_client, staff_option
from services.cli.timefmt import local, timestamp, zone

if TYPE_CHECKING:
    from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceAsyncStub

STATES = {"raised": cpb.FORM_STATE_RAISED, "analysed": cpb.FORM_STATE_ANALYSED,
          "delivered": cpb.FORM_STATE_DELIVERED, "cancelled": cpb.FORM_STATE_CANCELLED}
FLAGS = {cpb.FORM_FLAG_SUITABILITY_OVERRIDE: "OVERRIDE", cpb.FORM_FLAG_OVERDUE: "OVERDUE",
         cpb.FORM_FLAG_CLIENT_REMOTE: "CLIENT-REMOTE", cpb.FORM_FLAG_CLIENT_CLOSED: "CLIENT-LEFT"}


def _stub(ctl: Ctl) -> OnsiteServiceAsyncStub:
    return OnsiteServiceStub(ctl.channel("onsite"))




def _flags(form: cpb.ConsultationForm) -> str:
    return " ".join(FLAGS.get(f, str(f)) for f in form.flags)


# ---- the day ---------------------------------------------------------------------------------

async def day(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    plan = await stub.GetDailyPlan(api.GetDailyPlanRequest(
        client_manager_id=args.manager or "", plan_date=args.date or ""), metadata=ctl.metadata)
    manager = who(plan.client_manager_display_name, plan.client_manager_id)
    ctl.console.print(_("{manager} plan for {date}").format(manager=f"[bold]{manager}[/bold]",
                                                         date=plan.plan_date)
                      + (f": {plan.note}" if plan.note else ""))
    visits = await stub.ListVisits(api.ListVisitsRequest(
        client_manager_id=args.manager or "", start_date=plan.plan_date,
        end_date=plan.plan_date, page_size=200), metadata=ctl.metadata)
    done = {v.client_id for v in visits.visits}
    ctl.table("planned visits", ["client", "why", "visited"],
              [[who(p.client_display_name, p.client_id), clip(p.reason),
                "yes" if p.client_id in done else ""]
               for p in plan.visits])
    if plan.consultation_targets:
        ctl.table("consultation targets", ["client", "why"],
                  [[who(p.client_display_name, p.client_id), clip(p.reason)]
                   for p in plan.consultation_targets])
    if plan.dropped:
        ctl.table("dropped since planning", ["client", "why"],
                  [[who(p.client_display_name, p.client_id),
                    day_pb2.DropReason.Name(p.dropped).removeprefix(
                      "DROP_REASON_").lower()] for p in plan.dropped])
    ctl.table("visits recorded", ["time", "client", "room", "topics", "requests", "follow-up"],
              [[local(v.visit_time, "%H:%M"), who(v.client_display_name, v.client_id), v.room,
                ", ".join(v.topics), clip(v.client_requests),
                clip(v.follow_up_note) if v.follow_up_needed else ""]
               for v in visits.visits])
    patrols = await stub.ListPatrols(api.ListPatrolsRequest(
        client_manager_id=args.manager or "", start_date=plan.plan_date,
        end_date=plan.plan_date, page_size=200), metadata=ctl.metadata)
    ctl.table(_("rooms (planned: {rooms})").format(rooms=', '.join(plan.rooms) or '-'),
              ["time", "room", "observations"],
              [[local(p.patrol_time, "%H:%M"), p.room, p.observations]
               for p in patrols.patrols])
    report = await stub.GetCompliance(api.GetComplianceRequest(
        client_manager_id=args.manager or "", date=plan.plan_date), metadata=ctl.metadata)
    for row in report.rows:
        ctl.console.print(_("quota progress: visits {visits} ({visits_met}), rooms {rooms} "
                            "({rooms_met}), planned visits done {planned}").format(
            visits=f"{row.visits_done}/{row.visits_quota}",
            visits_met=_("met") if row.visits_met else _("not met"),
            rooms=f"{row.rooms_patrolled}/{row.rooms_quota}",
            rooms_met=_("met") if row.rooms_met else _("not met"),
            planned=f"{row.planned_visits_done}/{row.planned_visits}"))


def _planned(values: list[str] | None) -> list[day_pb2.PlannedClient]:
    out = []
    for value in values or []:
        client_id, _sep, reason = value.partition(":")
        out.append(day_pb2.PlannedClient(client_id=client_id, reason=reason))
    return out


async def plan(args: argparse.Namespace, ctl: Ctl) -> None:
    date = args.date or datetime.now(zone()).date().isoformat()
    visits, targets = _planned(args.visit), _planned(args.consult)
    for planned in (*visits, *targets):  # CLIENT is typed as anywhere else (people.py)
        planned.client_id = await resolve_client(ctl, planned.client_id)
    result = await _stub(ctl).SetDailyPlan(api.SetDailyPlanRequest(
        client_manager_id=args.manager or "", plan_date=date, visits=visits,
        rooms=args.room or [], consultation_targets=targets, note=args.note or ""),
        metadata=ctl.metadata)
    ctl.console.print(_("plan {id} for {date}: {visits} visits, {rooms} rooms, {targets} targets")
                      .format(id=result.id, date=result.plan_date, visits=len(result.visits),
                              rooms=len(result.rooms),
                              targets=len(result.consultation_targets)))


async def visit(args: argparse.Namespace, ctl: Ctl) -> None:
    msg = day_pb2.Visit(client_id=args.client, room=args.room or "", topics=args.topic or [],
                        client_requests=args.requests or "",
                        follow_up_needed=bool(args.follow_up),
                        follow_up_note=args.follow_up or "",
                        client_manager_id=args.manager or "")
    if args.at:
        msg.visit_time.CopyFrom(timestamp(args.at))
    v = await _stub(ctl).RecordVisit(api.RecordVisitRequest(visit=msg,
                                                            request_id=args.request_id or ""),
                                     metadata=ctl.metadata)
    ctl.console.print(_("visit {id} recorded: client {client} at {time}").format(
        id=v.id, client=v.client_id, time=local(v.visit_time)))


async def patrol(args: argparse.Namespace, ctl: Ctl) -> None:
    msg = day_pb2.Patrol(room=args.room, observations=args.obs or "",
                         client_manager_id=args.manager or "")
    if args.at:
        msg.patrol_time.CopyFrom(timestamp(args.at))
    p = await _stub(ctl).RecordPatrol(api.RecordPatrolRequest(
        patrol=msg, request_id=args.request_id or ""), metadata=ctl.metadata)
    ctl.console.print(_("patrol {id} recorded: {room} at {time}").format(
        id=p.id, room=p.room, time=local(p.patrol_time)))


async def compliance(args: argparse.Namespace, ctl: Ctl) -> None:
    report = await _stub(ctl).GetCompliance(api.GetComplianceRequest(
        client_manager_id=args.manager or "", date=args.date or "",
        period=day_pb2.PERIOD_WEEK if args.week else day_pb2.PERIOD_DAY),
        metadata=ctl.metadata)
    ctl.table("compliance", ["manager", "period", "visits", "planned done", "rooms", "targets",
                             "forms", "overdue", "met"],
              [[who(r.client_manager_display_name, r.client_manager_id),
                f"{r.start_date}..{r.end_date}",
                f"{r.visits_done}/{r.visits_quota}",
                f"{r.planned_visits_done}/{r.planned_visits}",
                f"{r.rooms_patrolled}/{r.rooms_quota}", r.consultation_targets, r.forms_raised,
                r.forms_overdue, "yes" if r.met else "NO"] for r in report.rows])


async def quota(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    if args.visits is not None or args.rooms is not None:
        if args.visits is None or args.rooms is None:
            raise SystemExit(_("give both --visits and --rooms"))
        await stub.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
            role=args.role, staff_id=args.staff or "", visits_per_day=args.visits,
            rooms_per_day=args.rooms)), metadata=ctl.metadata)
    resp = await stub.ListQuotas(api.ListQuotasRequest(page_size=200), metadata=ctl.metadata)
    ctl.table(_("quotas (default {visits} visits, {rooms} rooms a day)").format(
              visits=resp.default_visits_per_day, rooms=resp.default_rooms_per_day),
              ["role", "staff", "visits/day", "rooms/day", "set by", "at"],
              [[q.role, who(q.staff_display_name, q.staff_id) if q.staff_id else "(all)",
                q.visits_per_day, q.rooms_per_day,
                q.updated_by, local(q.update_time)] for q in resp.quotas])


# ---- consultation forms ----------------------------------------------------------------------

async def forms(args: argparse.Namespace, ctl: Ctl) -> None:
    states = [STATES[s] for s in args.state or []]
    if args.inbox:
        states = [cpb.FORM_STATE_RAISED, cpb.FORM_STATE_ANALYSED]
    resp = await _stub(ctl).ListConsultationForms(api.ListConsultationFormsRequest(
        consultant_id=args.consultant or "", client_manager_id=args.manager or "",
        client_id=args.client or "", states=states, overdue_only=args.overdue,
        flagged_only=args.flagged, page_size=args.limit, page_token=args.page or ""),
        metadata=ctl.metadata)
    ctl.table("consultation forms", ["id", "client", "manager", "consultant", "state",
                                     "raised", "deadline", "risk", "flags"],
              [[f.id, who(f.client_display_name, f.client_id),
                who(f.client_manager_display_name, f.client_manager_id),
                who(f.consultant_display_name, f.consultant_id),
                cpb.FormState.Name(f.state).removeprefix("FORM_STATE_").lower(),
                local(f.raise_time), local(f.deadline),
                client_pb2.RiskLevel.Name(f.advice_risk_level).removeprefix("RISK_LEVEL_")
                if f.advice_risk_level else "", _flags(f)] for f in resp.forms])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


def _print_form(ctl: Ctl, f: cpb.ConsultationForm) -> None:
    c = ctl.console
    c.print("[bold]" + _("form {id}").format(id=f.id) + "[/bold]  "
            + cpb.FormState.Name(f.state).removeprefix("FORM_STATE_")
            + (f"  [red]{_flags(f)}[/red]" if f.flags else ""))
    c.print(_("client {client}  manager {manager}  consultant {consultant}").format(
        client=who(f.client_display_name, f.client_id),
        manager=who(f.client_manager_display_name, f.client_manager_id),
        consultant=who(f.consultant_display_name, f.consultant_id)))
    c.print(_("raised {raised}  deadline {deadline}").format(raised=local(f.raise_time),
                                                             deadline=local(f.deadline))
            + ("  " + _("overdue event {time}").format(time=local(f.overdue_time))
               if f.overdue_time.seconds else ""))
    if f.request_note:
        c.print(_("request: {note}").format(note=f.request_note))
    ctl.table("holdings when raised", ["ticker", "quantity", "cost", "market", "risk", "as of"],
              [[p.ticker, p.quantity, p.cost_price, p.market_price or "-",
                client_pb2.RiskLevel.Name(p.risk_level).removeprefix("RISK_LEVEL_"), p.as_of]
               for p in f.positions])
    if f.analysis:
        c.print(_("analysis ({time} by {who}): {analysis}").format(
            time=local(f.analyse_time), who=f.analysed_by, analysis=f.analysis))
        c.print(_("advice R{advice} for a C{tolerance} client").format(
                    advice=f.advice_risk_level, tolerance=f.client_risk_tolerance)
                + (_(" (assessment expired)") if f.risk_assessment_expired else "")
                + f": {f.advice}")
        if f.suitability_override:
            c.print("[red]" + _("suitability override:") + "[/red] "
                    + f.suitability_override_reason)
        if f.note_ids:
            c.print(_("research notes cited: {notes}").format(notes=", ".join(f.note_ids)))
    if f.deliver_time.seconds:
        c.print(_("delivered {time} by {who}: {acknowledgement}").format(
            time=local(f.deliver_time), who=f.delivered_by, acknowledgement=f.acknowledgement))
    if f.cancel_time.seconds:
        c.print(_("cancelled {time} by {who}: {reason}").format(
            time=local(f.cancel_time), who=f.cancelled_by, reason=f.cancel_reason))


async def form(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_form(ctl, await _stub(ctl).GetConsultationForm(
        api.GetConsultationFormRequest(id=args.id), metadata=ctl.metadata))


async def notes(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListRelevantNotes(api.ListRelevantNotesRequest(
        form_id=args.id, page_size=args.limit, page_token=args.page or ""),
        metadata=ctl.metadata)
    tolerance = client_pb2.RiskTolerance.Name(resp.client_risk_tolerance).removeprefix(
        "RISK_TOLERANCE_") if resp.client_risk_tolerance else "none"
    ctl.console.print(_("tickers {tickers}; client tolerance {tolerance}").format(
        tickers=", ".join(resp.tickers) or _("(no holdings)"), tolerance=tolerance)
        + (_(" (assessment expired)") if resp.risk_assessment_expired else ""))
    ctl.table("research notes on the form's tickers",
              ["id", "title", "kind", "tickers", "stance", "risk", "valid until", "suits"],
              [[n.note_id, n.title,
                note_enums_pb2.NoteKind.Name(n.kind).removeprefix("NOTE_KIND_").lower(),
                " ".join(n.matched_tickers),
                " ".join(f"{st.ticker}:"
                         + note_enums_pb2.Stance.Name(st.stance).removeprefix("STANCE_").lower()
                         for st in n.stances if st.ticker in n.matched_tickers),
                client_pb2.RiskLevel.Name(n.risk_level).removeprefix("RISK_LEVEL_"),
                n.valid_until, "yes" if n.suitable else f"NO: {n.suitability_problem}"]
               for n in resp.notes])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def raise_form(args: argparse.Namespace, ctl: Ctl) -> None:
    f = await _stub(ctl).RaiseConsultationForm(api.RaiseConsultationFormRequest(
        client_id=args.client, consultant_id=args.consultant, request_note=args.note or "",
        request_id=args.request_id or ""), metadata=ctl.metadata)
    _print_form(ctl, f)


async def analyse(args: argparse.Namespace, ctl: Ctl) -> None:
    level = args.risk
    f = await _stub(ctl).AnalyseConsultationForm(api.AnalyseConsultationFormRequest(
        id=args.id, analysis=args.analysis, advice=args.advice, advice_risk_level=level,
        note_ids=args.note_id or [], suitability_override_reason=args.override or ""),
        metadata=ctl.metadata)
    _print_form(ctl, f)


async def deliver(args: argparse.Namespace, ctl: Ctl) -> None:
    f = await _stub(ctl).DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=args.id, acknowledgement=args.ack), metadata=ctl.metadata)
    _print_form(ctl, f)


async def cancel(args: argparse.Namespace, ctl: Ctl) -> None:
    f = await _stub(ctl).CancelConsultationForm(api.CancelConsultationFormRequest(
        id=args.id, reason=args.reason), metadata=ctl.metadata)
    _print_form(ctl, f)


async def overdue(args: argparse.Namespace, ctl: Ctl) -> None:
    when.in_order(args.start, args.end, ("--start", "--end"))
    stub = _stub(ctl)
    s = await stub.SummarizeOverdueForms(api.SummarizeOverdueFormsRequest(
        start_date=args.start or "", end_date=args.end or ""), metadata=ctl.metadata)
    ctl.console.print(_("overdue forms: {total} ({open} still open)").format(
        total=s.overdue_total, open=s.open_overdue))
    ctl.table("by consultant", ["consultant", "overdue", "still open"],
              [[who(x.staff_display_name, x.staff_id), x.overdue, x.open]
               for x in s.by_consultant])
    ctl.table("by client manager", ["manager", "overdue", "still open"],
              [[who(x.staff_display_name, x.staff_id), x.overdue, x.open]
               for x in s.by_client_manager])
    args.state, args.inbox, args.overdue, args.flagged = None, False, True, False
    args.consultant = args.manager = args.client = args.page = None
    args.limit = 50
    await forms(args, ctl)


async def settings(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    if args.deadline_hours is not None:
        msg = api.OnsiteSettings()
        msg.delivery_deadline.FromTimedelta(timedelta(hours=args.deadline_hours))
        current = await stub.UpdateOnsiteSettings(api.UpdateOnsiteSettingsRequest(settings=msg),
                                                  metadata=ctl.metadata)
    else:
        current = await stub.GetOnsiteSettings(api.GetOnsiteSettingsRequest(),
                                               metadata=ctl.metadata)
    hours = current.delivery_deadline.ToTimedelta().total_seconds() / 3600
    ctl.console.print(_("delivery deadline: {hours} hours after a form is raised").format(
        hours=f"{hours:g}")
        + (_(" (set by {who})").format(who=current.updated_by) if current.updated_by else ""))


# ---- meetings --------------------------------------------------------------------------------

def _fmt(m: meeting_pb2.Meeting) -> str:
    return m.room if m.format == meeting_pb2.MEETING_FORMAT_IN_PERSON else "online"


async def meetings(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListMeetingsRequest(page_size=args.limit, page_token=args.page or "")
    start = datetime.now(zone()) - timedelta(days=args.past)
    req.start_time.FromDatetime(start)
    resp = await _stub(ctl).ListMeetings(req, metadata=ctl.metadata)
    ctl.table("exchange meetings", ["id", "start", "topic", "where", "presenter", "state",
                                    "confirmed", "waiting", "attended"],
              [[m.id, local(m.start_time, "%a %Y-%m-%d %H:%M"), clip(m.topic), _fmt(m),
                who(m.presenter_display_name, m.presenter_id),
                meeting_pb2.MeetingState.Name(m.state).removeprefix("MEETING_STATE_").lower(),
                f"{m.confirmed_count}/{m.capacity}", m.waitlisted_count, m.attended_count]
               for m in resp.meetings])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def meeting(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    m = await stub.GetMeeting(api.GetMeetingRequest(id=args.id), metadata=ctl.metadata)
    ctl.console.print(f"[bold]{m.topic}[/bold]  {local(m.start_time, '%a %Y-%m-%d %H:%M')} "
                      + _("({minutes} min), {format}, capacity {capacity}, {state}").format(
                          minutes=m.duration_minutes, format=_fmt(m), capacity=m.capacity,
                          state=meeting_pb2.MeetingState.Name(m.state)
                          .removeprefix("MEETING_STATE_")))
    if m.note_ids:
        ctl.console.print(_("materials (research notes): {notes}").format(
            notes=", ".join(m.note_ids)))
    regs = await stub.ListRegistrations(api.ListRegistrationsRequest(
        meeting_id=m.id, page_size=1000), metadata=ctl.metadata)
    ctl.table("registrations", ["id", "client", "status", "waiting #", "attended"],
              [[r.id, who(r.client_display_name, r.client_id),
                meeting_pb2.RegistrationStatus.Name(r.status).removeprefix(
                  "REGISTRATION_STATUS_").lower(), r.waitlist_position or "",
                "yes" if r.attended else ""] for r in regs.registrations])


def _presenter(args: argparse.Namespace) -> tuple[int, str]:
    if args.analyst:
        return meeting_pb2.PRESENTER_KIND_ANALYST, args.analyst
    if args.sharing_client:
        return meeting_pb2.PRESENTER_KIND_CLIENT, args.sharing_client
    return 0, ""


async def schedule(args: argparse.Namespace, ctl: Ctl) -> None:
    kind, presenter = _presenter(args)
    m = await _stub(ctl).ScheduleMeeting(api.ScheduleMeetingRequest(meeting=meeting_pb2.Meeting(
        topic=args.topic, start_time=timestamp(args.start) if args.start else None,
        duration_minutes=args.duration,
        format=meeting_pb2.MEETING_FORMAT_ONLINE if args.online
        else meeting_pb2.MEETING_FORMAT_IN_PERSON, room=args.room or "",
        capacity=args.capacity, presenter_kind=kind, presenter_id=presenter,  # type: ignore[arg-type]
        note_ids=args.note_id or []), request_id=args.request_id or ""), metadata=ctl.metadata)
    ctl.console.print(_("meeting {id} scheduled for {time}").format(id=m.id,
                                                                  time=local(m.start_time)))


async def series(args: argparse.Namespace, ctl: Ctl) -> None:
    kind, presenter = _presenter(args)
    resp = await _stub(ctl).CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=meeting_pb2.MeetingSeries(
            title=args.title, weekday=args.weekday, start_local_time=args.time,
            duration_minutes=args.duration, capacity=args.capacity, room=args.room or "",
            format=meeting_pb2.MEETING_FORMAT_ONLINE if args.online
            else meeting_pb2.MEETING_FORMAT_IN_PERSON),
        weeks=args.weeks, topic=args.topic or "", presenter_kind=kind,  # type: ignore[arg-type]
        presenter_id=presenter, request_id=args.request_id or ""), metadata=ctl.metadata)
    ctl.console.print(_("series {id}: ").format(id=resp.series.id)
                      + ", ".join(local(m.start_time, "%a %Y-%m-%d %H:%M") for m in resp.meetings))


async def register(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).RegisterForMeeting(api.RegisterForMeetingRequest(
        meeting_id=args.meeting, client_id=args.client, request_id=args.request_id or ""),
        metadata=ctl.metadata)
    status = meeting_pb2.RegistrationStatus.Name(r.status).removeprefix("REGISTRATION_STATUS_")
    ctl.console.print(_("registration {id}: {status}").format(id=r.id, status=status.lower())
                      + (_(", #{position} on the waiting list").format(
                          position=r.waitlist_position) if r.waitlist_position else ""))


async def unregister(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).CancelRegistration(api.CancelRegistrationRequest(
        id=args.id, reason=args.reason or ""), metadata=ctl.metadata)
    ctl.console.print(_("registration {id} cancelled; the waiting list moved up").format(id=r.id))


async def attendance(args: argparse.Namespace, ctl: Ctl) -> None:
    m = await _stub(ctl).RecordAttendance(api.RecordAttendanceRequest(
        meeting_id=args.meeting, client_ids=args.clients), metadata=ctl.metadata)
    ctl.console.print(_("meeting {id} held: {attended} of {confirmed} attended").format(
        id=m.id, attended=m.attended_count, confirmed=m.confirmed_count))


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = groups.add_parser("onsite", help=_("client managers' day, consultation forms, meetings"))
    sub = g.add_subparsers(dest="onsite_cmd", required=True)

    p = sub.add_parser("day", help=_("a manager's plan, visits, patrols and quota progress"))
    p.add_argument("--date", type=when.day, help=_("YYYY-MM-DD (default today)"))
    staff_option(p, "--manager", help="whose day (supervisors)")
    p.set_defaults(func=day)

    p = sub.add_parser("plan", help=_("set the day's plan (replaces it)"))
    p.add_argument("--date", type=when.day, help=_("YYYY-MM-DD, today, tomorrow"))
    staff_option(p, "--manager")
    p.add_argument("--visit", action="append", metavar="CLIENT[:why]")
    p.add_argument("--room", action="append")
    p.add_argument("--consult", action="append", metavar="CLIENT[:why]")
    p.add_argument("--note")
    p.set_defaults(func=plan)

    p = sub.add_parser("visit", help=_("record a visit"))
    client_option(p, "client")
    p.add_argument("--room")
    p.add_argument("--topic", action="append")
    p.add_argument("--requests", help=_("what the client asked for"))
    p.add_argument("--follow-up", metavar="NOTE")
    p.add_argument("--at", type=when.moment,
                   help=_("when: 'YYYY-MM-DD HH:MM', '10:30', 'yesterday 16:00' (default now)"))
    staff_option(p, "--manager")
    p.add_argument("--request-id")
    p.set_defaults(func=visit)

    p = sub.add_parser("patrol", help=_("record a room patrol"))
    p.add_argument("room")
    p.add_argument("--obs", help=_("observations"))
    p.add_argument("--at", type=when.moment, help=_("when: '12:00', 'YYYY-MM-DD HH:MM' "
                   "(default now)"))
    staff_option(p, "--manager")
    p.add_argument("--request-id")
    p.set_defaults(func=patrol)

    p = sub.add_parser("compliance", help=_("planned vs done vs quota per manager"))
    p.add_argument("--date", type=when.day, help=_("YYYY-MM-DD, today, tomorrow"))
    p.add_argument("--week", action="store_true")
    staff_option(p, "--manager")
    p.set_defaults(func=compliance)

    p = sub.add_parser("quota", help=_("list quotas, or set one (supervisor)"))
    p.add_argument("--role", default="client_manager")
    staff_option(p, "--staff", help="one staff member instead of the whole role")
    p.add_argument("--visits", type=int)
    p.add_argument("--rooms", type=int)
    p.set_defaults(func=quota)

    p = sub.add_parser("forms", help=_("consultation forms (--inbox: open ones)"))
    p.add_argument("--inbox", action="store_true")
    p.add_argument("--state", action="append", choices=sorted(STATES))
    p.add_argument("--overdue", action="store_true")
    p.add_argument("--flagged", action="store_true")
    staff_option(p, "--consultant")
    staff_option(p, "--manager")
    client_option(p, "--client")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--page")
    p.set_defaults(func=forms)

    p = sub.add_parser("form", help=_("one form with its holdings snapshot"))
    p.add_argument("id")
    p.set_defaults(func=form)

    p = sub.add_parser("notes", help=_("published research notes on a form's tickers"))
    p.add_argument("id", metavar="FORM_ID")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--page")
    p.set_defaults(func=notes)

    p = sub.add_parser("raise", help=_("raise a consultation form for a target client"))
    client_option(p, "client")
    staff_option(p, "--consultant", required=True)
    p.add_argument("--note", help=_("what the client asked"))
    p.add_argument("--request-id")
    p.set_defaults(func=raise_form)

    p = sub.add_parser("analyse", help=_("write the analysis and advice"))
    p.add_argument("id")
    p.add_argument("--analysis", required=True)
    p.add_argument("--advice", required=True)
    p.add_argument("--risk", required=True, type=risk_level, help=_("R1..R5"))
    p.add_argument("--note-id", action="append", help=_("research note cited"))
    p.add_argument("--override", metavar="REASON", help=_("record a suitability override"))
    p.set_defaults(func=analyse)

    p = sub.add_parser("deliver", help=_("record delivery and the client's acknowledgement"))
    p.add_argument("id")
    p.add_argument("--ack", required=True)
    p.set_defaults(func=deliver)

    p = sub.add_parser("cancel", help=_("cancel a form with a reason"))
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cancel)

    p = sub.add_parser("overdue", help=_("supervisor: overdue forms by consultant and manager"))
    p.add_argument("--start", type=when.day, help=_("deadline from YYYY-MM-DD"))
    p.add_argument("--end", type=when.day)
    p.set_defaults(func=overdue)

    p = sub.add_parser("settings", help=_("show or set the delivery deadline"))
    p.add_argument("--deadline-hours", type=float)
    p.set_defaults(func=settings)

    p = sub.add_parser("meetings", help=_("exchange meetings from a week ago on"))
    p.add_argument("--past", type=count, default=7, help=_("days back (default 7)"))
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--page")
    p.set_defaults(func=meetings)

    p = sub.add_parser("meeting", help=_("one meeting with its registrations"))
    p.add_argument("id")
    p.set_defaults(func=meeting)

    for name, fn in (("schedule", schedule), ("series", series)):
        p = sub.add_parser(name, help="schedule one meeting" if name == "schedule"
                           else "create a weekly schedule")
        if name == "schedule":
            p.add_argument("--topic", required=True)
            p.add_argument("--start", required=True, type=when.moment,
                           help=_("local 'YYYY-MM-DD HH:MM' or 'next friday 19:00'"))
            p.add_argument("--note-id", action="append")
        else:
            p.add_argument("--title", required=True)
            p.add_argument("--weekday", type=int, required=True, help=_("1 Monday .. 7 Sunday"))
            p.add_argument("--time", required=True, help=_("HH:MM local"))
            p.add_argument("--weeks", type=int, default=4)
            p.add_argument("--topic")
        p.add_argument("--duration", type=int, default=90)
        p.add_argument("--capacity", type=int, default=30)
        p.add_argument("--room")
        p.add_argument("--online", action="store_true")
        staff_option(p, "--analyst", help="presenting analyst")
        client_option(p, "--sharing-client", help="an experienced client sharing")
        p.add_argument("--request-id")
        p.set_defaults(func=fn)

    p = sub.add_parser("register", help=_("register a client (waiting list when full)"))
    p.add_argument("meeting")
    client_option(p, "client")
    p.add_argument("--request-id")
    p.set_defaults(func=register)

    p = sub.add_parser("unregister", help=_("cancel a registration"))
    p.add_argument("id")
    p.add_argument("--reason")
    p.set_defaults(func=unregister)

    p = sub.add_parser("attendance", help=_("take attendance (marks the meeting held)"))
    p.add_argument("meeting")
    client_option(p, "clients", nargs="*")
    p.set_defaults(func=attendance)

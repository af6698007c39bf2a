"""branchctl insight ...: inspectors draw and score the month's sample, people see their own
results and appeal, shift leads keep the duty log, everyone entitled reads and downloads the
reports pack (日报, 周报, 月报)."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from branch.insight.v1 import duty_log_pb2, inspection_pb2, report_pb2, weekly_summary_pb2
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

if TYPE_CHECKING:
    from branch.insight.v1.insight_service_pb2_grpc import InsightServiceAsyncStub

from services.cli.branchctl import Ctl, clip, who
from services.cli.i18n import _
from services.insight.weekly import WEEK

K = inspection_pb2
KINDS = {"daily": report_pb2.REPORT_KIND_DAILY, "weekly": report_pb2.REPORT_KIND_WEEKLY,
         "monthly": report_pb2.REPORT_KIND_MONTHLY}
FORMATS = {"html": report_pb2.REPORT_FORMAT_HTML, "csv": report_pb2.REPORT_FORMAT_CSV,
           "xlsx": report_pb2.REPORT_FORMAT_XLSX}
STATES = {"pending": K.INSPECTION_STATE_PENDING, "scored": K.INSPECTION_STATE_SCORED}
DECISIONS = {"uphold": K.APPEAL_STATE_UPHELD, "reject": K.APPEAL_STATE_REJECTED}


def _stub(ctl: Ctl) -> InsightServiceAsyncStub:
    return InsightServiceStub(ctl.channel("insight"))


def _name(enum, value: int, prefix: str) -> str:  # type: ignore[no-untyped-def]
    return enum.Name(value).removeprefix(prefix).lower() if value else ""


async def draw(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).DrawSamples(api.DrawSamplesRequest(
        month=args.month, per_person=args.per_person), metadata=ctl.metadata)
    ctl.console.print(_("{drawn} inspections drawn; {people} people sampled for {month}")
                      .format(drawn=resp.drawn, people=resp.people, month=args.month))


async def settings(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    if args.samples_per_person is None:
        s = await stub.GetInspectionSettings(api.GetInspectionSettingsRequest(),
                                             metadata=ctl.metadata)
    else:
        s = await stub.UpdateInspectionSettings(api.UpdateInspectionSettingsRequest(
            settings=K.InspectionSettings(samples_per_person=args.samples_per_person)),
            metadata=ctl.metadata)
    by = (_(" (set by {who})").format(who=s.update_by) if s.update_by else _(" (default)"))
    ctl.console.print(_("samples per person each month: {count}").format(
        count=s.samples_per_person) + by)


async def queue(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListInspectionsRequest(page_size=args.limit, page_token=args.page or "",
                                     month=args.month or "", person_id=args.person or "",
                                     compliance_flagged=args.flagged)
    if args.state:
        req.state = STATES[args.state]
    resp = await _stub(ctl).ListInspections(req, metadata=ctl.metadata)
    ctl.table("inspections", ["id", "person", "team", "month", "kind", "interaction", "state",
                              "total", "flagged"],
              [[i.id, who(i.person_display_name, i.person_id), i.team, i.month,
                _name(K.InteractionKind, i.interaction_kind, "INTERACTION_KIND_"),
                i.interaction_id, _name(K.InspectionState, i.state, "INSPECTION_STATE_"),
                i.total_score, "yes" if i.compliance_flagged else ""]
               for i in resp.inspections])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def show(args: argparse.Namespace, ctl: Ctl) -> None:
    i = await _stub(ctl).GetInspection(api.GetInspectionRequest(id=args.id),
                                       metadata=ctl.metadata)
    ctl.console.print(f"{i.id} {who(i.person_display_name, i.person_id)} {i.month} "
                      + _("total={total} flagged={flagged}").format(
                          total=i.total_score or "-", flagged=i.compliance_flagged))
    ctl.table("scores", ["criterion", "score", "passed", "comment"],
              [[s.criterion_key, s.score, s.passed, s.comment] for s in i.scores])


async def score(args: argparse.Namespace, ctl: Ctl) -> None:
    """--score key=value for scored criteria; --fail key for a failed check."""
    stub = _stub(ctl)
    i = await stub.GetInspection(api.GetInspectionRequest(id=args.id), metadata=ctl.metadata)
    card = await stub.GetScorecard(api.GetScorecardRequest(id=i.scorecard_id),
                                   metadata=ctl.metadata)
    given = dict(item.split("=", 1) for item in args.score or [])
    scores = []
    for c in card.criteria:
        value = given.get(c.key, "0")
        if not c.check and not value.isdigit():
            raise SystemExit(_("--score {key}=N: a whole number 0-100").format(key=c.key))
        scores.append(K.CriterionScore(criterion_key=c.key, score=0 if c.check else int(value),
                                       passed=c.key not in (args.fail or [])))
    done = await stub.ScoreInspection(api.ScoreInspectionRequest(
        id=args.id, scores=scores, comment=args.comment or ""), metadata=ctl.metadata)
    ctl.console.print((_("scored {id}: total {total}; flagged to compliance")
                       if done.compliance_flagged else _("scored {id}: total {total}"))
                      .format(id=done.id, total=done.total_score))


def _weekly_print(w: weekly_summary_pb2.WeeklySummary, ctl: Ctl) -> None:
    f = w.figures
    ctl.console.print(_("week {week} (from {start}), by {author}: {inspections} inspections "
                        "scored, average {average}").format(
        week=w.week, start=w.week_start, author=w.author_id, inspections=f.inspections,
        average=f.average_score or "-"))
    ctl.console.print(w.summary)
    ctl.table("failed checks", ["criterion", "failed"],
              [[x.criterion_key, x.failed] for x in f.failures])
    ctl.table("common faults", ["criterion", "note"],
              [[x.criterion_key, clip(x.note, 60)] for x in w.common_faults])
    ctl.table("training plan", ["topic", "who", "due"],
              [[x.topic, x.who, x.due_date] for x in w.training_plan])


def _split(value: str, parts: int, flag: str) -> list[str]:
    items = value.split("|" if parts > 2 else "=", parts - 1)
    if len(items) != parts:
        raise SystemExit(_("{flag}: expected {shape}").format(
            flag=flag, shape="TOPIC|WHO|YYYY-MM-DD" if parts > 2 else "CRITERION=NOTE"))
    return items


async def weekly(args: argparse.Namespace, ctl: Ctl) -> None:
    """insight summary YYYY-Www [--text ...]: show, or write (create or update), a week's
    summary; insight summary weeks: list them."""
    stub = _stub(ctl)
    if args.period == "weeks":
        resp = await stub.ListWeeklySummaries(api.ListWeeklySummariesRequest(
            page_size=args.limit), metadata=ctl.metadata)
        ctl.table("weekly summaries", ["week", "from", "inspections", "average", "by",
                                       "summary"],
                  [[w.week, w.week_start, w.figures.inspections, w.figures.average_score,
                    w.author_id, clip(w.summary)] for w in resp.weekly_summaries])
        return
    if args.text is None:
        _weekly_print(await stub.GetWeeklySummary(api.GetWeeklySummaryRequest(
            week=args.period), metadata=ctl.metadata), ctl)
        return
    msg = weekly_summary_pb2.WeeklySummary(
        week=args.period, summary=args.text,
        common_faults=[weekly_summary_pb2.CommonFault(criterion_key=k, note=n) for k, n in
                       (_split(f, 2, "--fault") for f in args.fault)],
        training_plan=[weekly_summary_pb2.TrainingItem(topic=t, who=w, due_date=d)
                       for t, w, d in (_split(x, 3, "--train") for x in args.train)])
    try:
        w = await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
            weekly_summary=msg), metadata=ctl.metadata)
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        w = await stub.UpdateWeeklySummary(api.UpdateWeeklySummaryRequest(
            weekly_summary=msg), metadata=ctl.metadata)
    _weekly_print(w, ctl)


async def summary(args: argparse.Namespace, ctl: Ctl) -> None:
    if args.period == "weeks" or WEEK.match(args.period):
        await weekly(args, ctl)
        return
    resp = await _stub(ctl).GetInspectionSummary(api.GetInspectionSummaryRequest(
        month=args.period, months=args.months, person_id=args.person or ""),
        metadata=ctl.metadata)
    columns = ["who", "team", "month", "drawn", "scored", "average", "checks failed",
               "appeals upheld"]
    for title, lines in ((_("people"), resp.people), (_("teams"), resp.teams)):
        ctl.table(title, columns, [[x.subject, x.team, x.month, x.drawn, x.scored,
                                    x.average_score, x.checks_failed, x.appeals_upheld]
                                   for x in lines])


async def appeal(args: argparse.Namespace, ctl: Ctl) -> None:
    a = await _stub(ctl).CreateAppeal(api.CreateAppealRequest(
        appeal=K.Appeal(inspection_id=args.inspection, reason=args.reason),
        request_id=uuid.uuid4().hex), metadata=ctl.metadata)
    ctl.console.print(_("appeal {id} open").format(id=a.id))


async def appeals(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListAppeals(api.ListAppealsRequest(page_size=args.limit),
                                        metadata=ctl.metadata)
    ctl.table("appeals", ["id", "inspection", "person", "state", "decision", "revised"],
              [[a.id, a.inspection_id, who(a.person_display_name, a.person_id),
                _name(K.AppealState, a.state, "APPEAL_STATE_"), clip(a.decision),
                a.revised_score] for a in resp.appeals])


async def decide(args: argparse.Namespace, ctl: Ctl) -> None:
    a = await _stub(ctl).DecideAppeal(api.DecideAppealRequest(
        id=args.id, state=DECISIONS[args.decision], decision=args.reason,
        revised_score=args.revised_score or ""), metadata=ctl.metadata)
    ctl.console.print(_("appeal {id}: {state}").format(
        id=a.id, state=_name(K.AppealState, a.state, "APPEAL_STATE_")))


async def log_entry(args: argparse.Namespace, ctl: Ctl) -> None:
    e = await _stub(ctl).CreateDutyLogEntry(api.CreateDutyLogEntryRequest(
        entry=duty_log_pb2.DutyLogEntry(category=args.category, text=args.text),
        request_id=uuid.uuid4().hex), metadata=ctl.metadata)
    ctl.console.print(_("logged {id} for {day}").format(id=e.id, day=e.shift_day))


async def log_list(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListDutyLogEntries(api.ListDutyLogEntriesRequest(
        page_size=args.limit, shift_day=args.day or ""), metadata=ctl.metadata)
    ctl.table("duty log", ["day", "category", "author", "text"],
              [[e.shift_day, e.category, who(e.author_display_name, e.author_id),
                clip(e.text, 80)] for e in resp.entries])


async def reports(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListReportsRequest(page_size=args.limit)
    if args.kind:
        req.kind = KINDS[args.kind]
    resp = await _stub(ctl).ListReports(req, metadata=ctl.metadata)
    ctl.table("reports", ["id", "kind", "from", "to", "accepted", "SLA %", "avg score", "by"],
              [[r.id, _name(report_pb2.ReportKind, r.kind, "REPORT_KIND_"), r.period_start,
                r.period_end, r.figures.accepted, r.figures.sla_compliance_percent,
                r.figures.average_score, who(r.generated_by_display_name, r.generated_by)]
               for r in resp.reports])


async def generate(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).GenerateReport(api.GenerateReportRequest(
        kind=KINDS[args.kind], day=args.day), metadata=ctl.metadata)
    ctl.console.print(_("report {id}: {start} – {end}").format(id=r.id, start=r.period_start,
                                                              end=r.period_end))


async def download(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).DownloadReport(api.DownloadReportRequest(
        id=args.id, format=FORMATS[args.format]), metadata=ctl.metadata)
    target = Path(args.file or resp.filename)
    target.write_bytes(resp.content)
    ctl.console.print(_("wrote {path} ({size} bytes)").format(path=target, size=len(resp.content)))


async def rebuild(args: argparse.Namespace, ctl: Ctl) -> None:
    await _stub(ctl).RebuildReadModel(api.RebuildReadModelRequest(), metadata=ctl.metadata)
    ctl.console.print(_("read model emptied; the event stream is being replayed (see "
                        "`branchctl insight status`)"))


async def status(args: argparse.Namespace, ctl: Ctl) -> None:
    s = await _stub(ctl).GetReadModelStatus(api.GetReadModelStatusRequest(),
                                            metadata=ctl.metadata)
    when = s.last_apply_time.ToDatetime().isoformat() if s.last_apply_time.seconds else "-"
    ctl.console.print(_("events applied: {count}; last at {time} UTC").format(
        count=s.events_applied, time=when))


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("insight", help=_("quality inspection, duty log, reports pack"))
    sub = group.add_subparsers(dest="command", required=True)

    p = sub.add_parser("draw", help=_("draw a finished month's sample (inspector)"))
    p.add_argument("month", help=_("YYYY-MM"))
    p.add_argument("--per-person", type=int, default=0,
                   help=_("1-5; default: the branch setting (insight settings)"))
    p.set_defaults(func=draw)

    p = sub.add_parser("settings", help=_("show or set the monthly sample size (inspector)"))
    p.add_argument("--samples-per-person", type=int, help=_("1-5, for the scheduled draw"))
    p.set_defaults(func=settings)

    p = sub.add_parser("inspections", help=_("the queue, or your own results"))
    p.add_argument("--month")
    p.add_argument("--person")
    p.add_argument("--state", choices=sorted(STATES))
    p.add_argument("--flagged", action="store_true", help=_("failed securities checks only"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--page")
    p.set_defaults(func=queue)

    p = sub.add_parser("show", help=_("one inspection with its scores"))
    p.add_argument("id")
    p.set_defaults(func=show)

    p = sub.add_parser("score", help=_("score an inspection (inspector)"))
    p.add_argument("id")
    p.add_argument("--score", action="append", metavar="KEY=N")
    p.add_argument("--fail", action="append", metavar="CHECK_KEY")
    p.add_argument("--comment")
    p.set_defaults(func=score)

    p = sub.add_parser("summary", help=_("monthly figures per person and team (YYYY-MM), or "
                       "the inspector's weekly summary (YYYY-Www; 'weeks' lists them)"))
    p.add_argument("period", help=_("YYYY-MM, the last month; YYYY-Www, a week; or weeks"))
    p.add_argument("--months", type=int, default=1)
    p.add_argument("--person")
    p.add_argument("--text", help=_("write the week's summary (inspector) with this text"))
    p.add_argument("--fault", action="append", default=[], metavar="CRITERION=NOTE",
                   help=_("a common fault for the shift briefing (repeatable)"))
    p.add_argument("--train", action="append", default=[], metavar="TOPIC|WHO|YYYY-MM-DD",
                   help=_("a training plan item (repeatable)"))
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=summary)

    p = sub.add_parser("appeal", help=_("appeal your inspection's result"))
    p.add_argument("inspection")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=appeal)

    p = sub.add_parser("appeals", help=_("list appeals"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=appeals)

    p = sub.add_parser("decide", help=_("decide an appeal (inspector or supervisor)"))
    p.add_argument("id")
    p.add_argument("decision", choices=sorted(DECISIONS))
    p.add_argument("--reason", required=True)
    p.add_argument("--revised-score")
    p.set_defaults(func=decide)

    p = sub.add_parser("log", help=_("append to today's duty log (shift lead)"))
    p.add_argument("text")
    p.add_argument("--category", default="note")
    p.set_defaults(func=log_entry)

    p = sub.add_parser("logbook", help=_("read the duty log"))
    p.add_argument("--day", help=_("YYYY-MM-DD"))
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=log_list)

    p = sub.add_parser("reports", help=_("stored reports"))
    p.add_argument("--kind", choices=sorted(KINDS))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=reports)

    p = sub.add_parser("generate", help=_("build a finished period's report now"))
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("day", help=_("any day in the period, YYYY-MM-DD"))
    p.set_defaults(func=generate)

    p = sub.add_parser("download", help=_("a report as HTML, CSV or XLSX"))
    p.add_argument("id")
    p.add_argument("--format", choices=sorted(FORMATS), default="html")
    p.add_argument("--file", "-f", help=_("where to write it (default: the report's file name)"))
    p.set_defaults(func=download)

    p = sub.add_parser("status", help=_("how far the read model has got"))
    p.set_defaults(func=status)

    p = sub.add_parser("rebuild", help=_("replay the event stream into a fresh read model (admin)"))
    p.set_defaults(func=rebuild)

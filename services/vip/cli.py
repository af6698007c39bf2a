"""branchctl vip ...: a broker works the inbox (acknowledge, research, answer, relay, record the
client's acknowledgement); a supervisor checks the rota, on-call, breaches and SLA report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from branch.directory.v1 import client_pb2
from branch.vip.v1 import advisory_pb2, relay_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from branch.vip.v1.vip_service_pb2_grpc import VipServiceStub

from services.cli import when
from services.cli.argtypes import count, risk_level
from services.cli.branchctl import Ctl, clip, who
from services.cli.i18n import Label, _
from services.cli.people import client_option, staff_option
from services.cli.timefmt import local, timestamp
from services.common.protos import enum_name

if TYPE_CHECKING:
    from branch.vip.v1.vip_service_pb2_grpc import VipServiceAsyncStub
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

CHANNELS = {"phone": relay_pb2.RELAY_CHANNEL_PHONE, "meeting": relay_pb2.RELAY_CHANNEL_MEETING,
            "message": relay_pb2.RELAY_CHANNEL_MESSAGE, "video": relay_pb2.RELAY_CHANNEL_VIDEO}
ROLES = {"broker": rota_pb2.SHIFT_ROLE_BROKER, "analyst": rota_pb2.SHIFT_ROLE_ANALYST,
         "supervisor": rota_pb2.SHIFT_ROLE_SUPERVISOR}
URGENCY = {"normal": advisory_pb2.URGENCY_NORMAL, "high": advisory_pb2.URGENCY_HIGH}


def _stub(ctl: Ctl) -> VipServiceAsyncStub:
    return VipServiceStub(ctl.channel("vip"))


def _name(enum: _EnumTypeWrapper[Any], value: int, prefix: str) -> str:
    return enum_name(enum, value).removeprefix(prefix).lower()


def _print_advisory(ctl: Ctl, a: advisory_pb2.Advisory) -> None:
    ctl.table(_("advisory {id}").format(id=a.id), ["field", "value"], [
        [Label("client"), who(a.client_display_name, a.client_id)], [Label("question"), a.question],
        [Label("tickers"), ", ".join(a.tickers)],
        [Label("state"), _name(advisory_pb2.AdvisoryState, a.state, "ADVISORY_STATE_")],
        [Label("urgency"), _name(advisory_pb2.Urgency, a.urgency, "URGENCY_")],
        [Label("source"), _name(advisory_pb2.AdvisorySource, a.source, "ADVISORY_SOURCE_")
         + (f" (ticket {a.source_ticket_id})" if a.source_ticket_id else "")],
        [Label("assignee"), who(a.assignee_display_name, a.assignee_id)],
        [Label("dedicated broker"), who(a.dedicated_broker_display_name, a.dedicated_broker_id)],
        [Label("acknowledge due"), local(a.acknowledge_due_time)],
        [Label("answer due"), local(a.answer_due_time)],
        [Label("research answer"), a.research_answer + (f" (note {a.research_note_id})"
                                                 if a.research_note_id else "")],
        [Label("advice"), a.advice + (f" [R{a.advice_risk_level}]" if a.advice_risk_level else "")
         + (f" OVERRIDE: {a.override_reason}" if a.suitability_overridden else "")],
        [Label("breaches"), ", ".join(n for n, b in (("acknowledge", a.acknowledge_breached),
                                              ("answer", a.answer_breached)) if b)],
        [Label("escalation"), f"level {a.escalation_level} -> "
                       f"{who(a.escalated_to_display_name, a.escalated_to_id)}"
         if a.escalation_level else ""],
        [Label("closed"), a.close_reason],
    ])


async def inbox(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).GetInbox(api.GetInboxRequest(
        broker_id=args.broker or "", page_size=args.limit, page_token=args.page or ""),
        metadata=ctl.metadata)
    rows = []
    for item in resp.items:
        if item.WhichOneof("item") == "advisory":
            a = item.advisory
            rows.append(["advisory", a.id, who(a.client_display_name, a.client_id),
                         clip(a.question, 50),
                         local(item.deadline), "OVERDUE" if item.overdue else "",
                         item.next_action])
        else:
            r = item.relay
            rows.append(["relay", r.id, who(r.client_display_name, r.client_id),
                         clip(r.note_title, 50), local(item.deadline),
                         "OVERDUE" if item.overdue else "", item.next_action])
    ctl.table(_("inbox of {broker}: {advisories} advisories, {relays} relays").format(
        broker=who(resp.broker_display_name, resp.broker_id), advisories=resp.advisory_count,
        relays=resp.relay_count), ["kind", "id", "client", "subject",
                                             "deadline", "", "next"], rows)
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def show(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_advisory(ctl, await _stub(ctl).GetAdvisory(api.GetAdvisoryRequest(id=args.id),
                                                      metadata=ctl.metadata))


async def ask(args: argparse.Namespace, ctl: Ctl) -> None:
    a = await _stub(ctl).CreateAdvisory(api.CreateAdvisoryRequest(
        advisory=advisory_pb2.Advisory(client_id=args.client, question=args.question,
                                       tickers=args.ticker or [], urgency=URGENCY[args.urgency]),
        request_id=args.request_id or ""), metadata=ctl.metadata)
    _print_advisory(ctl, a)


async def acknowledge(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_advisory(ctl, await _stub(ctl).AcknowledgeAdvisory(
        api.AcknowledgeAdvisoryRequest(id=args.id), metadata=ctl.metadata))


async def research(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_advisory(ctl, await _stub(ctl).RequestAdvisoryResearch(
        api.RequestAdvisoryResearchRequest(id=args.id, question=args.question or ""),
        metadata=ctl.metadata))


async def answer(args: argparse.Namespace, ctl: Ctl) -> None:
    level = args.risk
    _print_advisory(ctl, await _stub(ctl).AnswerAdvisory(api.AnswerAdvisoryRequest(
        id=args.id, advice=args.advice, risk_level=client_pb2.RiskLevel.ValueType(level),
        override_reason=args.override or ""), metadata=ctl.metadata))


async def close(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_advisory(ctl, await _stub(ctl).CloseAdvisory(api.CloseAdvisoryRequest(
        id=args.id, reason=args.reason), metadata=ctl.metadata))


def _print_relay(ctl: Ctl, r: relay_pb2.RelayTask) -> None:
    ctl.table(_("relay {id}").format(id=r.id), ["field", "value"], [
        [Label("note"), f"{r.note_id} rev {r.revision}: {r.note_title}"],
        [Label("risk"), client_pb2.RiskLevel.Name(r.risk_level).removeprefix("RISK_LEVEL_")],
        [Label("client"), who(r.client_display_name, r.client_id)],
        [Label("broker"), who(r.broker_display_name, r.broker_id)],
        [Label("held tickers"), ", ".join(r.matched_tickers)],
        [Label("state"), _name(relay_pb2.RelayState, r.state, "RELAY_STATE_")],
        [Label("due"), local(r.due_time) + (" OVERDUE" if r.overdue else "")],
        [Label("delivered"), f"{local(r.deliver_time)} by "
         f"{_name(relay_pb2.RelayChannel, r.channel, 'RELAY_CHANNEL_')}: {r.summary}"
         if r.deliver_time.seconds else ""],
        [Label("acknowledged"), f"{local(r.acknowledge_time)} {r.acknowledgement_note}"
         if r.acknowledge_time.seconds else ""],
        [Label("reason"), r.reason],
    ])


async def relay(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_relay(ctl, await _stub(ctl).RecordRelayDelivery(api.RecordRelayDeliveryRequest(
        id=args.id, channel=CHANNELS[args.channel], summary=args.summary),
        metadata=ctl.metadata))


async def client_ack(args: argparse.Namespace, ctl: Ctl) -> None:
    _print_relay(ctl, await _stub(ctl).RecordRelayAcknowledgement(
        api.RecordRelayAcknowledgementRequest(id=args.id, note=args.note or ""),
        metadata=ctl.metadata))


async def relays(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListRelaysRequest(note_id=args.note or "", client_id=args.client or "",
                                page_size=args.limit, page_token=args.page or "")
    if args.state:
        req.state = relay_pb2.RelayState.Value("RELAY_STATE_" + args.state.upper())
    resp = await _stub(ctl).ListRelays(req, metadata=ctl.metadata)
    ctl.table("relays", ["id", "note", "client", "broker", "state", "due", "reason"],
              [[r.id, clip(r.note_title, 30), who(r.client_display_name, r.client_id),
                who(r.broker_display_name, r.broker_id),
                _name(relay_pb2.RelayState, r.state, "RELAY_STATE_"), local(r.due_time),
                clip(r.reason, 30)] for r in resp.relays])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def gaps(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).CheckRotaGaps(api.CheckRotaGapsRequest(
        role=ROLES[args.role], days=args.days), metadata=ctl.metadata)
    ctl.console.print(_("{role} rota, next {days} days ({zone}): {uncovered} of {window} hours "
                        "uncovered").format(role=args.role, days=args.days, zone=resp.time_zone,
                                            uncovered=f"{resp.uncovered_hours:g}",
                                            window=f"{resp.window_hours:g}"))
    if resp.gaps:
        ctl.table("gaps", ["from", "to", "hours"],
                  [[g.local_start, g.local_end, f"{g.hours:g}"] for g in resp.gaps])


async def on_call(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.GetOnCallRequest()
    if args.at:
        req.time.CopyFrom(timestamp(args.at))
    resp = await _stub(ctl).GetOnCall(req, metadata=ctl.metadata)
    rows = [[kind, who(s.staff_display_name, s.staff_id), local(s.start_time),
             local(s.end_time)]
            for kind, shifts in (("broker", resp.brokers), ("analyst", resp.analysts),
                                 ("supervisor", resp.supervisors)) for s in shifts]
    ctl.table(_("on call at {time}").format(time=local(resp.time)),
              ["role", "staff", "from", "to"], rows)


async def shift(args: argparse.Namespace, ctl: Ctl) -> None:
    when.in_order(args.start, args.end, ("START", "END"))
    msg = rota_pb2.Shift(staff_id=args.staff, role=ROLES[args.role], note=args.note or "")
    msg.start_time.CopyFrom(timestamp(args.start))
    msg.end_time.CopyFrom(timestamp(args.end))
    made = await _stub(ctl).CreateShift(api.CreateShiftRequest(shift=msg),
                                        metadata=ctl.metadata)
    ctl.console.print(_("shift {id}: {start} - {end}").format(
        id=made.id, start=local(made.start_time), end=local(made.end_time)))


async def breaches(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListBreaches(api.ListBreachesRequest(
        broker_id=args.broker or "", page_size=args.limit, page_token=args.page or ""),
        metadata=ctl.metadata)
    ctl.table("breaches", ["kind", "resource", "client", "broker", "due / breached",
                           "escalation"],
              [[_name(api.BreachKind, b.kind, "BREACH_KIND_ADVISORY_"), b.resource_id,
                who(b.client_display_name, b.client_id), who(b.broker_display_name, b.broker_id),
                f"{local(b.due_time)} / {local(b.breach_time)}",
                f"{b.escalation_level} -> {who(b.escalated_to_display_name, b.escalated_to_id)}"
                if b.escalation_level else ""]
               for b in resp.breaches])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def report(args: argparse.Namespace, ctl: Ctl) -> None:
    when.in_order(args.start, args.end, ("--start", "--end"))
    resp = await _stub(ctl).GetSlaReport(api.GetSlaReportRequest(
        start_date=args.start or "", end_date=args.end or "", broker_id=args.broker or ""),
        metadata=ctl.metadata)
    ctl.table(_("SLA per broker per week ({zone})").format(zone=resp.time_zone),
              ["week", "broker", "advisories", "ack ok", "answer ok", "ack breach",
               "answer breach", "escalated", "SLA", "relays", "delivered", "acked", "overdue",
               "withheld", "coverage"],
              [[r.week_start, who(r.broker_display_name, r.broker_id), r.advisories,
                r.acknowledged_in_time,
                r.answered_in_time, r.acknowledge_breaches, r.answer_breaches, r.escalations,
                f"{r.sla_compliance:.0%}", r.relays_targeted, r.relays_delivered,
                r.relays_acknowledged, r.relays_overdue, r.relays_withheld,
                f"{r.relay_coverage:.0%}"] for r in resp.rows])


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("vip", help=_("key clients: broker inbox, advisories, relays, rota"))
    sub = group.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inbox", help=_("advisories and relays due, by deadline"))
    staff_option(p, "--broker", help="supervisors: whose inbox")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--page")
    p.set_defaults(func=inbox)
    p = sub.add_parser("show", help=_("one advisory"))
    p.add_argument("id")
    p.set_defaults(func=show)
    p = sub.add_parser("ask", help=_("open an advisory request for a key client"))
    client_option(p, "client")
    p.add_argument("question")
    p.add_argument("--ticker", action="append")
    p.add_argument("--urgency", choices=URGENCY, default="normal")
    p.add_argument("--request-id")
    p.set_defaults(func=ask)
    p = sub.add_parser("acknowledge", help=_("acknowledge an advisory"))
    p.add_argument("id")
    p.set_defaults(func=acknowledge)
    p = sub.add_parser("research", help=_("send an advisory's question to research"))
    p.add_argument("id")
    p.add_argument("--question")
    p.set_defaults(func=research)
    p = sub.add_parser("answer", help=_("give the advice (risk level R1-R5)"))
    p.add_argument("id")
    p.add_argument("advice")
    p.add_argument("--risk", required=True, type=risk_level, help=_("R1..R5"))
    p.add_argument("--override", help=_("reason to give advice above the client's tolerance"))
    p.set_defaults(func=answer)
    p = sub.add_parser("close", help=_("close an advisory without advice"))
    p.add_argument("id")
    p.add_argument("reason")
    p.set_defaults(func=close)
    p = sub.add_parser("relays", help=_("list relay tasks"))
    p.add_argument("--note")
    client_option(p, "--client")
    p.add_argument("--state", choices=["pending", "delivered", "acknowledged", "cancelled",
                                       "withheld"])
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--page")
    p.set_defaults(func=relays)
    p = sub.add_parser("relay", help=_("record how you explained a note to the client"))
    p.add_argument("id")
    p.add_argument("--channel", choices=CHANNELS, required=True)
    p.add_argument("--summary", required=True)
    p.set_defaults(func=relay)
    p = sub.add_parser("client-ack", help=_("record the client's acknowledgement of a relay"))
    p.add_argument("id")
    p.add_argument("--note")
    p.set_defaults(func=client_ack)
    p = sub.add_parser("gaps", help=_("uncovered rota hours (supervisor)"))
    p.add_argument("--role", choices=ROLES, default="broker")
    p.add_argument("--days", type=count.at_least(1), default=14)
    p.set_defaults(func=gaps)
    p = sub.add_parser("on-call", help=_("who is on call (now, or --at local time)"))
    p.add_argument("--at", type=when.moment, help=_("'tomorrow 09:00', 'YYYY-MM-DD HH:MM'"))
    p.set_defaults(func=on_call)
    p = sub.add_parser("shift", help=_("add a shift (supervisor; local times)"))
    staff_option(p, "staff")
    p.add_argument("start", type=when.moment, help=_("e.g. 2026-03-02T08:00, 'monday 08:00'"))
    p.add_argument("end", type=when.moment)
    p.add_argument("--role", choices=ROLES, default="broker")
    p.add_argument("--note")
    p.set_defaults(func=shift)
    p = sub.add_parser("breaches", help=_("SLA breaches, newest first (supervisor)"))
    staff_option(p, "--broker")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--page")
    p.set_defaults(func=breaches)
    p = sub.add_parser("report", help=_("SLA compliance per broker per week (supervisor)"))
    p.add_argument("--start", type=when.day)
    p.add_argument("--end", type=when.day)
    staff_option(p, "--broker")
    p.set_defaults(func=report)

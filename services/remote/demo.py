"""The demo branch's remote desk: agents on the two lines, running campaigns with three weeks
of callbacks, delivered reports, and hotline tickets in every state. Public API only."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import report_pb2
from branch.remote.v1 import ticket_pb2 as tpb
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

from services.common.protos import ts

if TYPE_CHECKING:
    from services.cli.demo import Demo

INVEST, TECH = tpb.LINE_INVESTMENT, tpb.LINE_TECHNICAL
OUTCOMES = [cpb.CALLBACK_OUTCOME_REACHED] * 11 + [cpb.CALLBACK_OUTCOME_NO_ANSWER] * 5 + [
    cpb.CALLBACK_OUTCOME_CALL_BACK_LATER, cpb.CALLBACK_OUTCOME_CALL_BACK_LATER,
    cpb.CALLBACK_OUTCOME_DECLINED, cpb.CALLBACK_OUTCOME_WRONG_NUMBER]
NOTES = {
    cpb.CALLBACK_OUTCOME_REACHED: ["satisfied with the app", "asked about margin trading",
                                   "wants the monthly report by e-mail", "no concerns"],
    cpb.CALLBACK_OUTCOME_NO_ANSWER: ["no answer", "line busy"],
    cpb.CALLBACK_OUTCOME_CALL_BACK_LATER: ["in a meeting, call tomorrow afternoon"],
    cpb.CALLBACK_OUTCOME_DECLINED: ["does not want calls"],
    cpb.CALLBACK_OUTCOME_WRONG_NUMBER: ["number belongs to someone else"],
}
TICKETS = [
    # line, priority, category, summary, complaint
    (INVEST, tpb.PRIORITY_NORMAL, "market", "asks how to read the weekly strategy note", False),
    (INVEST, tpb.PRIORITY_URGENT, "position", "wants advice on a falling holding", False),
    (TECH, tpb.PRIORITY_URGENT, "login", "cannot log in to the trading app", False),
    (TECH, tpb.PRIORITY_NORMAL, "quotes", "quotes freeze in the PC client", False),
    (INVEST, tpb.PRIORITY_NORMAL, "fees", "commission charged looks too high", True),
    (TECH, tpb.PRIORITY_NORMAL, "account", "bank transfer not arrived", True),
    (INVEST, tpb.PRIORITY_NORMAL, "ipo", "how to subscribe to new shares", False),
    (TECH, tpb.PRIORITY_URGENT, "order", "order stuck as pending", False),
]


# When each demo call came in: most handled within their SLA, a few old ones breached.
RECEIVED_MINUTES_AGO = {0: 20160, 1: 10080, 2: 9, 3: 8, 4: 7, 5: 6, 6: 5, 7: 4, 8: 3, 9: 2,
                        10: 4000, 11: 12, 12: 90, 13: 30, 14: 10, 15: 300, 16: 25000,
                        17: 600, 18: 40, 19: 5}


async def load(demo: Demo) -> None:
    stub = RemoteServiceStub(demo.channel("remote"))
    rng = demo.rng
    sup = demo.as_role("supervisor")
    agents = demo.staff.get("service_agent", [])
    if not agents:
        return

    def as_agent(staff_id: str) -> list[tuple[str, str]]:
        return demo.as_staff(staff_id, "service_agent")

    # the desk: six agents on duty, two off
    for i, agent in enumerate(agents):
        lines = [INVEST] if i % 3 == 0 else [TECH] if i % 3 == 1 else [INVEST, TECH]
        await stub.SetAgentDuty(api.SetAgentDutyRequest(staff_id=agent, lines=lines,
                                                        on_duty=i < 6), metadata=sup)

    today = demo.today
    # three weeks of callbacks, and at least two weeks of last month whatever today's date,
    # so the quality inspectors' monthly sample (insight) has last month's calls to draw
    span = max(21, today.day + 14)
    start = (today - timedelta(days=span)).isoformat()
    general = await stub.CreateCampaign(api.CreateCampaignRequest(campaign=cpb.Campaign(
        name="Quarterly check-in", purpose="hear remote clients' needs, offer the written report",
        kind=cpb.CAMPAIGN_KIND_GENERAL, start_date=start,
        end_date=(today + timedelta(days=30)).isoformat(), agent_ids=agents[:4],
        daily_quota=20, max_attempts=3, retry_backoff_minutes=120,
        rule=cpb.TargetRule(not_contacted_days=30, max_targets=160)),
        request_id="demo-campaign-general"), metadata=sup)
    new_accounts = await stub.CreateCampaign(api.CreateCampaignRequest(campaign=cpb.Campaign(
        name="New accounts within one month", purpose="regulatory callback of new accounts",
        kind=cpb.CAMPAIGN_KIND_NEW_ACCOUNTS, start_date=start,
        end_date=(today + timedelta(days=60)).isoformat(), agent_ids=agents[4:6],
        daily_quota=10), request_id="demo-campaign-new"), metadata=sup)
    await stub.CreateCampaign(api.CreateCampaignRequest(campaign=cpb.Campaign(
        name="Annual 10% sample", purpose="regulatory: 10% of the year-end book",
        kind=cpb.CAMPAIGN_KIND_ANNUAL_SAMPLE, start_date=today.isoformat(),
        end_date=today.replace(month=12, day=31).isoformat(), agent_ids=agents[2:6],
        daily_quota=15), request_id="demo-campaign-annual"), metadata=sup)

    # callbacks over the span, recorded with the time they were made
    made = 0
    for round_ in range(90):
        agent = agents[round_ % 6]
        md = as_agent(agent)
        nxt = await stub.NextCallback(api.NextCallbackRequest(), metadata=md)
        if not nxt.target.id:
            continue
        outcome = rng.choice(OUTCOMES)
        req = api.RecordCallbackRequest(
            target_id=nxt.target.id, outcome=outcome, notes=rng.choice(NOTES[outcome]),
            request_id=f"demo-callback-{round_}")
        if round_ < 80:  # the last ones are today's
            req.call_time.CopyFrom(ts(demo.now - timedelta(days=span * (80 - round_) / 80,
                                                            minutes=rng.randint(0, 300))))
        if outcome == cpb.CALLBACK_OUTCOME_CALL_BACK_LATER:
            req.callback_time.CopyFrom(ts(demo.now + timedelta(hours=rng.randint(2, 48))))
        await stub.RecordCallback(req, metadata=md)
        made += 1
    # one agent is mid-call right now
    await stub.NextCallback(api.NextCallbackRequest(campaign_id=general.id),
                            metadata=as_agent(agents[0]))

    # written reports for remote clients: most delivered
    remote_clients = [c for c in demo.clients
                      if c.channel == client_pb2.CHANNEL_REMOTE and c.tickers][:8]
    period_start = (today - timedelta(days=365)).isoformat()
    channels = [report_pb2.DELIVERY_CHANNEL_EMAIL, report_pb2.DELIVERY_CHANNEL_APP,
                report_pb2.DELIVERY_CHANNEL_POST]
    reports = 0
    for i, client in enumerate(remote_clients):
        agent = agents[i % 4]
        report = await stub.CreateReport(api.CreateReportRequest(
            client_id=client.id, period_start=period_start, period_end=today.isoformat(),
            request_id=f"demo-report-{i}"), metadata=as_agent(agent))
        reports += 1
        if i < 6:
            await stub.DeliverReport(api.DeliverReportRequest(
                id=report.id, channel=channels[i % 3],
                delivered_to=f"client-{i}@example.com" if i % 3 == 0 else "on file"),
                metadata=as_agent(agent))

    # hotline tickets in every state, spread over three weeks
    key = next((c for c in demo.clients if c.tier == client_pb2.TIER_KEY), None)
    known = [c for c in demo.clients if c.channel == client_pb2.CHANNEL_REMOTE]
    tickets = []
    for i in range(24):
        line, priority, category, summary, complaint = TICKETS[i % len(TICKETS)]
        caller = key if i == 1 and key else (rng.choice(known) if known and i % 2 else None)
        ticket = tpb.Ticket(line=line, priority=priority, category=category, summary=summary,
                            complaint=complaint and i < 16, caller_name="caller",
                            caller_phone=f"139{rng.randint(10000000, 99999999)}",
                            client_id=caller.id if caller else "")
        opening = api.OpenTicketRequest(ticket=ticket, auto_assign=True,
                                        request_id=f"demo-ticket-{i}")
        minutes_ago = RECEIVED_MINUTES_AGO.get(i, 0)
        if minutes_ago:
            opening.received_time.CopyFrom(ts(demo.now - timedelta(minutes=minutes_ago)))
        tickets.append(await stub.OpenTicket(opening, metadata=sup))

    async def act(t: tpb.Ticket, step: str) -> None:
        md = as_agent(t.owner_id)
        if step == "respond":
            await stub.RespondTicket(api.RespondTicketRequest(
                id=t.id, note="called back, looking into it"), metadata=md)
        elif step == "pause":
            await stub.PauseTicket(api.PauseTicketRequest(
                id=t.id, reason=tpb.PAUSE_REASON_WAITING_CALLER,
                note="waiting for the caller's screenshot"), metadata=md)
        elif step == "transfer":
            await stub.TransferTicket(api.TransferTicketRequest(
                id=t.id, department="it", note="needs the trading-system team"), metadata=md)
        elif step == "resolve":
            await stub.ResolveTicket(api.ResolveTicketRequest(
                id=t.id, resolution_note="explained and confirmed with the caller"),
                metadata=md)
        elif step == "close":
            await stub.RecordFollowUp(api.RecordFollowUpRequest(
                id=t.id, outcome=cpb.CALLBACK_OUTCOME_REACHED,
                satisfaction=rng.choice([3, 4, 4, 5, 5]), notes="happy with the answer",
                request_id=f"demo-follow-{t.id}"), metadata=md)
        elif step == "reopen":
            await stub.ReopenTicket(api.ReopenTicketRequest(
                id=t.id, reason="the problem came back"), metadata=md)

    plans = {
        # closed with satisfaction
        **{i: ["respond", "resolve", "close"] for i in range(0, 10)},
        10: ["respond", "resolve", "close", "reopen"],       # reopened, history kept
        11: ["respond", "resolve"],                            # resolved, follow-up due
        12: ["respond", "resolve"],
        13: ["respond", "transfer"],                           # transferred, owner stays
        14: ["respond", "pause"],                              # waiting on the caller
        15: ["respond"],                                       # in progress, breached
        16: [],                                                # open and long breached
        17: ["respond", "transfer", "pause"],
        20: ["respond"],                                       # today's, in progress
        # 18, 19, 21, 22, 23: open
    }
    for i, steps in plans.items():
        for step in steps:
            await act(tickets[i], step)
    await stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(), metadata=sup)
    demo.shared["remote_campaign_ids"] = [general.id, new_accounts.id]
    demo.shared["remote_ticket_ids"] = [t.id for t in tickets]
    print(f"demo: remote {made} callbacks, {reports} reports, {len(tickets)} tickets",
          flush=True)

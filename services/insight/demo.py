"""The demo branch's insight: last month's inspection sample drawn from what the other demos
recorded (callbacks, tickets, advisories), most of it scored by the demo inspectors (one call
failing the risk-disclosure check, flagged to compliance), two appeals (one upheld, one open),
today's duty log, and the reports pack: daily reports for the last two weeks, weekly reports
for the last four weeks and last month's monthly report. Every time is at or before now."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from branch.insight.v1 import duty_log_pb2, inspection_pb2, report_pb2
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

from services.common.clock import add_months, week_of

if TYPE_CHECKING:
    from branch.insight.v1.insight_service_pb2_grpc import InsightServiceAsyncStub

    from services.cli.demo import Demo

K = inspection_pb2
SETTLE_SECONDS = 2.0
MAX_WAIT_SECONDS = 20.0
DUTY_LOG = [
    ("briefing", "班前会: common faults this week — closing without confirming the client's "
                 "need; remind everyone to disclose risk before naming any product."),
    ("handover", "Two hotline tickets waiting over three days handed to the day shift."),
    ("incident", "Trading software login issue reported by several clients 09:40-10:05; "
                 "answered from the desk's notice, no ticket escalated."),
]
COMMENTS = ["clear wording, confirmed the need", "should summarise the client's question",
            "calm under pressure", "tone a little hurried", "good handling of an unexpected ask"]


async def _wait_for_read_model(stub: InsightServiceAsyncStub, demo: Demo) -> None:
    """Until the events of the demos loaded before stop arriving (or MAX_WAIT_SECONDS)."""
    meta = demo.as_admin()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_WAIT_SECONDS
    last, since = -1, loop.time()
    while loop.time() < deadline:
        applied = (await stub.GetReadModelStatus(api.GetReadModelStatusRequest(),
                                                 metadata=meta)).events_applied
        if applied != last:
            last, since = applied, loop.time()
        elif applied > 0 and loop.time() - since >= SETTLE_SECONDS:
            return
        await asyncio.sleep(0.25)


async def load(demo: Demo) -> None:
    stub = InsightServiceStub(demo.channel("insight"))
    rng = demo.rng
    await _wait_for_read_model(stub, demo)
    inspectors = demo.staff.get("quality_inspector") or ["demo-qi-1", "demo-qi-2"]
    meta = [demo.as_staff(i, "quality_inspector") for i in inspectors]
    last_month = add_months(demo.today.replace(day=1), -1)
    month = last_month.strftime("%Y-%m")
    await stub.DrawSamples(api.DrawSamplesRequest(month=month, per_person=3), metadata=meta[0])
    drawn = (await stub.ListInspections(api.ListInspectionsRequest(
        month=month, page_size=1000), metadata=meta[0])).inspections
    card = await stub.GetScorecard(api.GetScorecardRequest(id="default"), metadata=meta[0])
    scored: list[K.Inspection] = []
    for n, item in enumerate(drawn):
        if n % 5 == 4:
            continue  # left in the queue
        base = rng.randint(62, 96)
        scores = [K.CriterionScore(
            criterion_key=c.key,
            score=0 if c.check else max(0, min(100, base + rng.randint(-8, 8))),
            passed=not (n == 1 and c.key == "risk_disclosed"),
            comment=rng.choice(COMMENTS) if not c.check and rng.random() < 0.3 else "")
            for c in card.criteria]
        scored.append(await stub.ScoreInspection(api.ScoreInspectionRequest(
            id=item.id, scores=scores, comment="monthly sample"), metadata=meta[n % len(meta)]))
    for n, item in enumerate(scored[:2]):
        role = "broker" if item.team == "broker" else "service_agent"
        person = demo.as_staff(item.person_id, role)
        appeal = await stub.CreateAppeal(api.CreateAppealRequest(appeal=K.Appeal(
            inspection_id=item.id, reason="the recording cuts off before I summarised the "
                                          "client's need"), request_id=f"demo-appeal-{n}"),
            metadata=person)
        if n == 0:
            decider = next((m for i, m in zip(inspectors, meta, strict=True)
                            if i != item.inspector_id), demo.as_role("supervisor"))
            await stub.DecideAppeal(api.DecideAppealRequest(
                id=appeal.id, state=K.APPEAL_STATE_UPHELD, decision="full recording reviewed",
                revised_score=str(min(100, int(float(item.total_score)) + 5))),
                metadata=decider)
    lead = demo.as_role("supervisor")
    for i, (category, text) in enumerate(DUTY_LOG):
        await stub.CreateDutyLogEntry(api.CreateDutyLogEntryRequest(
            entry=duty_log_pb2.DutyLogEntry(category=category, text=text),
            request_id=f"demo-duty-{i}"), metadata=lead)
    await stub.GenerateReport(api.GenerateReportRequest(
        kind=report_pb2.REPORT_KIND_MONTHLY, day=last_month.isoformat()), metadata=lead)
    monday = week_of(demo.today)[0]
    for w in range(1, 5):
        await stub.GenerateReport(api.GenerateReportRequest(
            kind=report_pb2.REPORT_KIND_WEEKLY,
            day=(monday - timedelta(weeks=w)).isoformat()), metadata=lead)
    for d in range(1, 15):
        await stub.GenerateReport(api.GenerateReportRequest(
            kind=report_pb2.REPORT_KIND_DAILY,
            day=(demo.today - timedelta(days=d)).isoformat()), metadata=lead)
    demo.shared["insight_month"] = month

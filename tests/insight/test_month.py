"""A month of demo activity through real NATS into two insight replicas on one database: the
samples, scores, report figures (checked against counts made here from the events) and one
monthly report generated exactly once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import openpyxl
import pytest
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import inspection_pb2, report_pb2
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.insight import server as insight_server
from services.insight.server import SPEC
from tests.harness import auth, channel, collect_events, eventually, make_settings, running
from tests.insight.month import AGENTS, BROKERS, build_month, expected, interactions, publish_all

INSPECTOR = auth("qi-1", "quality_inspector")
FIRST, LAST = date(2026, 2, 1), date(2026, 2, 28)
# 23 March 2026, 00:10 in Shanghai: just after local midnight, after the 22nd (a Sunday: the
# February report was due on Friday the 20th)
NOW = datetime(2026, 3, 22, 16, 10, tzinfo=UTC)


def score_all(inspection: inspection_pb2.Inspection, card: inspection_pb2.Scorecard,
              value: int, fail: str = "") -> api.ScoreInspectionRequest:
    return api.ScoreInspectionRequest(id=inspection.id, comment="ok", scores=[
        inspection_pb2.CriterionScore(criterion_key=c.key, score=0 if c.check else value,
                                      passed=c.key != fail, comment="")
        for c in card.criteria])


@pytest.fixture
async def replicas(tmp_path: Path, nats_url: str,
                   database_url: str) -> AsyncIterator[tuple[ServiceRunner, ServiceRunner]]:
    clock = FakeClock(NOW)
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings, clock=clock) as one, \
            running(SPEC, settings, clock=clock) as two:
        yield one, two


async def test_a_month_of_activity(replicas: tuple[ServiceRunner, ServiceRunner],
                                   nats_url: str) -> None:
    one, two = replicas
    events = build_month(2026, 2)
    await publish_all(nats_url, events)
    relevant = len(events)
    await eventually(lambda: sum(c.handled for r in replicas for c in r.consumers) >= relevant,
                     timeout=30)

    # the sample: drawn by both replicas at once, once
    drawn = await asyncio.gather(insight_server.draw_samples(one.ctx),
                                 insight_server.draw_samples(two.ctx))
    pool = interactions(events, FIRST, LAST)
    assert sum(drawn) == sum(min(3, len(ids)) for ids in pool.values())
    assert await insight_server.draw_samples(one.ctx) == 0
    async with channel(one) as ch:
        stub = InsightServiceStub(ch)
        listed = (await stub.ListInspections(api.ListInspectionsRequest(
            month="2026-02", page_size=500), metadata=INSPECTOR)).inspections
        by_person: dict[str, list[inspection_pb2.Inspection]] = {}
        for i in listed:
            by_person.setdefault(i.person_id, []).append(i)
        assert set(by_person) == set(pool)
        for person, items in by_person.items():
            assert len(items) == min(3, len(pool[person]))
            assert {i.interaction_id for i in items} <= pool[person]
            assert len({i.interaction_id for i in items}) == len(items)
            assert {i.team for i in items} == {"broker" if person in BROKERS else
                                               "service_agent"}
        assert set(AGENTS) <= set(by_person)

        # scoring: every inspection, one failing the no-promise-of-returns check
        card = await stub.GetScorecard(api.GetScorecardRequest(id="default"),
                                       metadata=INSPECTOR)
        assert [c.title for c in card.criteria][:5] == [
            "服务用语", "服务态度", "语气语调", "客户需求的归纳能力", "应变能力"]
        totals = []
        for n, item in enumerate(listed):
            value = 60 + (n * 7) % 41
            fail = "no_return_promise" if n == 0 else ""
            scored = await stub.ScoreInspection(score_all(item, card, value, fail),
                                                metadata=INSPECTOR)
            assert scored.total_score == f"{value}.00"
            assert scored.compliance_flagged == (n == 0)
            totals.append(value)
        flagged = await collect_events(nats_url, "branch.insight.inspection.flagged", count=1)
        assert len(flagged) == 1

        # the scheduled reports: both replicas run the pass together; each report once
        made = await asyncio.gather(insight_server.generate_reports(one.ctx),
                                    insight_server.generate_reports(two.ctx))
        assert sum(made) == 3  # yesterday's, last week's, February's
        assert await insight_server.generate_reports(two.ctx) == 0
        monthly = (await stub.ListReports(api.ListReportsRequest(
            kind=report_pb2.REPORT_KIND_MONTHLY), metadata=INSPECTOR)).reports
        assert len(monthly) == 1
        generated = await collect_events(nats_url, "branch.insight.report.generated", count=4,
                                         timeout=3)
        assert len(generated) == 3
        report = monthly[0]
        assert (report.period_start, report.period_end) == ("2026-02-01", "2026-02-28")
        assert report.generated_by == "schedule"
        f = report.figures
        want = expected(events, FIRST, LAST)
        for name in ("accepted", "supervised", "feedback", "resolved_within_sla", "callbacks",
                     "visits", "patrols", "advisories_opened", "advisories_answered",
                     "advisories_late", "callback_target", "callback_quota_missed",
                     "working_days"):
            assert getattr(f, name) == want[name], name
        assert f.working_days < 20  # the Spring Festival holidays are not working days
        assert f.callback_quota_missed == 1  # raised on 1 March, about 28 February
        assert {b.label: b.count for b in f.waiting if b.count} == want["waiting"]
        assert f.inspections_scored == len(listed)
        assert f.compliance_flags == 1
        mean = sum(totals) / len(totals)
        assert abs(float(f.average_score) - mean) < 0.01
        assert sum(d.count for d in f.daily_accepted) == want["accepted"]
        assert len(f.daily_accepted) == 28

        # the files
        files = {}
        for fmt in (report_pb2.REPORT_FORMAT_HTML, report_pb2.REPORT_FORMAT_CSV,
                    report_pb2.REPORT_FORMAT_XLSX):
            files[fmt] = await stub.DownloadReport(api.DownloadReportRequest(
                id=report.id, format=fmt), metadata=INSPECTOR)
        html = files[report_pb2.REPORT_FORMAT_HTML].content.decode()
        assert "<svg" in html and "月报" in html
        csv_text = files[report_pb2.REPORT_FORMAT_CSV].content.decode("utf-8")
        assert csv_text.startswith("\ufeff")
        assert f"受理 accepted (tickets opened),{want['accepted']}" in csv_text
        book = openpyxl.load_workbook(io.BytesIO(files[report_pb2.REPORT_FORMAT_XLSX].content))
        rows = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True)}
        assert rows["受理 accepted (tickets opened)"] == want["accepted"]
        assert files[report_pb2.REPORT_FORMAT_XLSX].filename == \
            "insight-monthly-2026-02-01.xlsx"

        # asking again returns the stored report, not a second one
        again = await stub.GenerateReport(api.GenerateReportRequest(
            kind=report_pb2.REPORT_KIND_MONTHLY, day="2026-02-14"), metadata=INSPECTOR)
        assert again.id == report.id
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GenerateReport(api.GenerateReportRequest(
                kind=report_pb2.REPORT_KIND_MONTHLY, day="2026-03-01"), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # trend per person and team
        summary = await stub.GetInspectionSummary(api.GetInspectionSummaryRequest(
            month="2026-03", months=2), metadata=INSPECTOR)
        feb = [line for line in summary.teams if line.month == "2026-02"]
        assert sum(line.scored for line in feb) == len(listed)
        assert {line.subject for line in feb} == {"service_agent", "broker"}


async def test_the_read_model_rebuilds_from_the_stream(
        replicas: tuple[ServiceRunner, ServiceRunner], nats_url: str) -> None:
    one, _ = replicas
    events = build_month(2026, 2, seed=21)
    await publish_all(nats_url, events)
    await eventually(lambda: sum(c.handled for r in replicas for c in r.consumers)
                     >= len(events), timeout=30)
    reports = insight_server.insight_of(one.ctx).reports

    async def figures() -> report_pb2.ReportFigures:
        async with one.db.read() as session:
            return await reports.figures(session, report_pb2.REPORT_KIND_MONTHLY, FIRST, LAST)

    before = await figures()
    assert before.accepted == expected(events, FIRST, LAST)["accepted"]
    async with channel(one) as ch:
        stub = InsightServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RebuildReadModel(api.RebuildReadModelRequest(), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        handled = sum(c.handled for r in replicas for c in r.consumers)
        await stub.RebuildReadModel(api.RebuildReadModelRequest(),
                                    metadata=auth("admin-1", "admin"))

        async def caught_up() -> bool:
            status = await stub.GetReadModelStatus(api.GetReadModelStatusRequest(),
                                                   metadata=INSPECTOR)
            return status.events_applied >= len(events)

        await eventually(caught_up, timeout=30)
    # every event was applied again, by one replica or the other
    assert sum(c.handled for r in replicas for c in r.consumers) >= handled + len(events)
    assert await figures() == before

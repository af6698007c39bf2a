"""The demo fills last month's inspections and the reports pack through the public API, and
branchctl insight reads them, downloads a report and keeps the duty log."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import inspection_pb2, report_pb2
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

from services.cli.branchctl import Ctl, build_parser
from services.cli.demo import Demo
from services.common.clock import FakeClock
from services.insight import demo as insight_demo
from services.insight.server import SPEC
from tests.harness import SIGNER, auth, channel, make_settings, running, token
from tests.insight.month import AGENTS, build_month, publish_all

# 2 April 2026, 00:20 in Shanghai (the demo loads at any hour; this is just after midnight)
NOW = datetime(2026, 4, 1, 16, 20, tzinfo=UTC)
INSPECTOR = auth("qi-1", "quality_inspector")


async def run(ctl: Ctl, *argv: str) -> None:
    args: argparse.Namespace = build_parser().parse_args(["insight", *argv])
    await args.func(args, ctl)


async def test_demo_and_branchctl(tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock(NOW)
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=clock) as runner:
        await publish_all(nats_url, build_month(2026, 3, seed=3))
        settings = runner.settings.model_copy(update={"insight_addr": runner.address})
        demo = Demo(settings=settings, admin_token=token("admin-1", "admin"), signer=SIGNER,
                    now=clock.now(),
                    staff={"quality_inspector": ["qi-1", "qi-2"], "supervisor": ["sup-1"]})
        try:
            await insight_demo.load(demo)
        finally:
            await demo.close()
        assert demo.shared["insight_month"] == "2026-03"
        async with channel(runner) as ch:
            stub = InsightServiceStub(ch)
            items = (await stub.ListInspections(api.ListInspectionsRequest(
                month="2026-03", page_size=1000), metadata=INSPECTOR)).inspections
            scored = [i for i in items if i.state == inspection_pb2.INSPECTION_STATE_SCORED]
            assert len(items) >= 15 and 0 < len(scored) < len(items)
            assert sum(i.compliance_flagged for i in items) == 1
            appeals = (await stub.ListAppeals(api.ListAppealsRequest(),
                                              metadata=INSPECTOR)).appeals
            assert sorted(a.state for a in appeals) == [inspection_pb2.APPEAL_STATE_OPEN,
                                                        inspection_pb2.APPEAL_STATE_UPHELD]
            reports = (await stub.ListReports(api.ListReportsRequest(page_size=100),
                                              metadata=INSPECTOR)).reports
            kinds = sorted(r.kind for r in reports)
            assert kinds.count(report_pb2.REPORT_KIND_MONTHLY) == 1
            assert kinds.count(report_pb2.REPORT_KIND_WEEKLY) == 4
            assert kinds.count(report_pb2.REPORT_KIND_DAILY) == 14
            monthly = next(r for r in reports if r.kind == report_pb2.REPORT_KIND_MONTHLY)
            assert monthly.period_start == "2026-03-01"
            assert monthly.figures.inspections_scored == len(scored)
            assert all(r.period_end < "2026-04-02" for r in reports)  # nothing in the future

        monkeypatch.setenv("BRANCH_INSIGHT_ADDR", runner.address)
        lead = Ctl(token=token("sup-1", "supervisor"))
        agent = Ctl(token=token(AGENTS[0], "service_agent"))
        try:
            await run(lead, "log", "queue cleared by 17:00", "--category", "handover")
            await run(lead, "logbook", "--day", "2026-04-02")
            await run(lead, "reports", "--kind", "monthly")
            target = tmp_path / "march.xlsx"
            await run(lead, "download", monthly.id, "--format", "xlsx", "--file", str(target))
            await run(agent, "inspections", "--month", "2026-03")
        finally:
            await lead.close()
            await agent.close()
        out = capsys.readouterr().out
        assert "queue cleared by 17:00" in out and "2026-03-01" in out
        book = openpyxl.load_workbook(target)
        assert book["Summary"]["A1"].value == "report"
        assert AGENTS[1] not in out.split("inspections")[-1]

"""The quality inspector's weekly summary: written by the inspector, read by supervisors and
agents, with the week's figures cut from the inspections scored in that ISO week in branch
time (a score just after local midnight on Monday belongs to the new week)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import grpc
import pytest
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import weekly_summary_pb2 as W
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

from services.cli.branchctl import Ctl
from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.insight import server as insight_server
from services.insight.server import SPEC
from tests.harness import auth, bad_fields, channel, eventually, make_settings, running, token
from tests.insight.month import build_month, publish_all
from tests.insight.test_demo_cli import run
from tests.insight.test_month import score_all

INSPECTOR = auth("qi-1", "quality_inspector")
AGENT = auth("agent-1", "service_agent")
SUPERVISOR = auth("sup-1", "supervisor")
# 1 March 2026, 00:05 in Shanghai: February is over, its sample can be drawn
DRAW_AT = datetime(2026, 2, 28, 16, 5, tzinfo=UTC)
WEEK = "2026-W10"  # Monday 2 March 2026 to Sunday 8 March, branch time


@pytest.fixture
async def one(tmp_path: Path, nats_url: str,
              database_url: str) -> AsyncIterator[tuple[ServiceRunner, FakeClock]]:
    clock = FakeClock(DRAW_AT)
    async with running(SPEC, make_settings(tmp_path, nats_url, database_url),
                       clock=clock) as runner:
        yield runner, clock


def summary(week: str = WEEK, key: str = "risk_disclosed") -> W.WeeklySummary:
    return W.WeeklySummary(
        week=week, summary="风险揭示漏讲两次；话术整体规范。",
        common_faults=[W.CommonFault(criterion_key=key, note="先讲风险，再讲产品")],
        training_plan=[W.TrainingItem(topic="适当性告知话术", who="service_agent",
                                      due_date="2026-03-13")])


def local(day: int, hour: int, minute: int) -> datetime:
    """A Shanghai wall-clock time in March 2026 as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - \
        (datetime(2026, 3, day, 8) - datetime(2026, 3, day, 0))


async def test_figures_are_the_weeks_scored_inspections_in_branch_time(
        one: tuple[ServiceRunner, FakeClock], nats_url: str) -> None:
    runner, clock = one
    events = build_month(2026, 2)
    await publish_all(nats_url, events)
    await eventually(lambda: sum(c.handled for c in runner.consumers) >= len(events),
                     timeout=30)
    assert await insight_server.draw_samples(runner.ctx) > 0
    assert date(2026, 3, 2).isocalendar()[:2] == (2026, 10)
    async with channel(runner) as ch:
        stub = InsightServiceStub(ch)
        pending = list((await stub.ListInspections(api.ListInspectionsRequest(
            month="2026-02", page_size=10), metadata=INSPECTOR)).inspections)
        assert len(pending) >= 4
        card = await stub.GetScorecard(api.GetScorecardRequest(id=pending[0].scorecard_id),
                                       metadata=INSPECTOR)
        checks = [c.key for c in card.criteria if c.check]
        # Sunday 23:50 local (W09); Monday 00:05 local (W10, still Sunday in UTC); Sunday
        # 8 March 23:59 local (W10); Monday 9 March 00:00 local (W11)
        plan = [(local(1, 23, 50), 70, checks[0]), (local(2, 0, 5), 80, checks[0]),
                (local(8, 23, 59), 91, ""), (local(9, 0, 0), 60, checks[-1])]
        totals = []
        for inspection, (when, value, fail) in zip(pending, plan, strict=False):
            clock.set(when)
            scored = await stub.ScoreInspection(score_all(inspection, card, value, fail),
                                                metadata=INSPECTOR)
            totals.append(scored.total_score)
        clock.set(local(10, 9, 0))
        made = await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
            weekly_summary=summary(key=checks[0])), metadata=INSPECTOR)
        assert made.week_start == "2026-03-02" and made.author_id == "qi-1"
        assert made.figures.inspections == 2
        mean = (Decimal(totals[1]) + Decimal(totals[2])) / 2
        assert made.figures.average_score == str(mean.quantize(Decimal("0.01"),
                                                               ROUND_HALF_UP))
        assert [(f.criterion_key, f.failed) for f in made.figures.failures] == [(checks[0], 1)]
        assert [f.criterion_key for f in made.common_faults] == [checks[0]]
        assert made.training_plan[0].due_date == "2026-03-13"
        # agents and supervisors read it, with the same figures
        for who in (AGENT, SUPERVISOR):
            got = await stub.GetWeeklySummary(api.GetWeeklySummaryRequest(week=WEEK),
                                              metadata=who)
            assert got.figures == made.figures and got.summary == made.summary
        # the week before holds the Sunday 23:50 score only
        before = await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
            weekly_summary=summary("2026-W09", checks[0])), metadata=INSPECTOR)
        assert before.figures.inspections == 1
        assert before.figures.average_score == totals[0]
        listed = await stub.ListWeeklySummaries(api.ListWeeklySummariesRequest(),
                                                metadata=AGENT)
        assert [s.week for s in listed.weekly_summaries] == [WEEK, "2026-W09"]


async def test_only_the_inspector_writes_and_bad_input_changes_nothing(
        one: tuple[ServiceRunner, FakeClock]) -> None:
    runner, _ = one
    async with channel(runner) as ch:
        stub = InsightServiceStub(ch)
        for who in (AGENT, SUPERVISOR, auth("br-1", "broker")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
                    weekly_summary=summary()), metadata=who)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
                weekly_summary=summary("2026-W54")), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == {"weekly_summary.week"}
        bad = summary(key="no_such_criterion")
        bad.summary = " "
        bad.training_plan[0].due_date = "2026-13-01"
        bad.training_plan.append(W.TrainingItem(topic="", who="agent-2",
                                                due_date="2026-03-20"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
                weekly_summary=bad), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == {
            "weekly_summary.summary", "weekly_summary.common_faults[0].criterion_key",
            "weekly_summary.training_plan[0].due_date", "weekly_summary.training_plan[1].topic"}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetWeeklySummary(api.GetWeeklySummaryRequest(week=WEEK),
                                        metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateWeeklySummary(api.UpdateWeeklySummaryRequest(
                weekly_summary=summary()), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        card = (await stub.ListScorecards(api.ListScorecardsRequest(),
                                          metadata=INSPECTOR)).scorecards[0]
        key = card.criteria[0].key
        await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
            weekly_summary=summary(key=key)), metadata=INSPECTOR)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateWeeklySummary(api.CreateWeeklySummaryRequest(
                weekly_summary=summary(key=key)), metadata=INSPECTOR)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        changed = summary(key=key)
        changed.summary = "更新：周三复盘"
        del changed.training_plan[:]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateWeeklySummary(api.UpdateWeeklySummaryRequest(
                weekly_summary=changed), metadata=AGENT)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        got = await stub.UpdateWeeklySummary(api.UpdateWeeklySummaryRequest(
            weekly_summary=changed), metadata=auth("qi-2", "quality_inspector"))
        assert (got.summary, got.author_id, len(got.training_plan)) == (
            "更新：周三复盘", "qi-2", 0)
        assert got.figures.inspections == 0 and got.figures.average_score == ""


async def test_branchctl_writes_and_shows_the_week_and_sets_the_sample_size(
        one: tuple[ServiceRunner, FakeClock], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    runner, _ = one
    monkeypatch.setenv("BRANCH_INSIGHT_ADDR", runner.address)
    inspector = Ctl(token=token("qi-1", "quality_inspector"))
    agent = Ctl(token=token("agent-1", "service_agent"))
    async with channel(runner) as ch:
        card = (await InsightServiceStub(ch).ListScorecards(
            api.ListScorecardsRequest(), metadata=INSPECTOR)).scorecards[0]
    key = card.criteria[0].key
    try:
        await run(inspector, "summary", WEEK, "--text", "首周总结", "--fault", f"{key}=语速过快",
                  "--train", "话术|service_agent|2026-03-13")
        await run(inspector, "summary", WEEK, "--text", "修订总结")  # the week has one: update
        await run(agent, "summary", WEEK)
        await run(agent, "summary", "weeks")
        await run(inspector, "settings", "--samples-per-person", "4")
        await run(inspector, "settings")
    finally:
        await inspector.close()
        await agent.close()
    out = capsys.readouterr().out
    assert "首周总结" in out and "修订总结" in out and "2026-03-02" in out
    assert "samples per person each month: 4 (set by qi-1)" in out
    async with channel(runner) as ch:
        got = await InsightServiceStub(ch).GetWeeklySummary(
            api.GetWeeklySummaryRequest(week=WEEK), metadata=AGENT)
    assert (got.summary, list(got.common_faults)) == ("修订总结", [])

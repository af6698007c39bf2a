"""When the reports and the sample fall due, on the business calendar and in branch time
(pure rules, then the passes with a frozen clock on a real SQLite file and NATS)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import report_pb2
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

from services.common.calendar import BranchCalendar, Override
from services.common.clock import FakeClock
from services.insight import server as insight_server
from services.insight.reports import monthly_due, period_of
from services.insight.server import SPEC
from tests.harness import auth, channel, make_settings, running

R = report_pb2


def test_the_monthly_report_is_due_by_the_22nd_on_a_working_day() -> None:
    calendar = BranchCalendar()
    # 22 Feb 2026 is inside the Spring Festival holiday; Saturday 14 Feb is a make-up
    # working day (调休), so January's report is due then
    assert monthly_due(calendar, date(2026, 1, 1)) == date(2026, 2, 14)
    # Sunday 22 March: Friday the 20th
    assert monthly_due(calendar, date(2026, 2, 1)) == date(2026, 3, 20)
    assert monthly_due(calendar, date(2026, 9, 1)) == date(2026, 10, 22)
    # an operator's override (a day off declared late) moves it too
    calendar.replace_overrides([Override(date(2026, 10, 22), working=False)])
    assert monthly_due(calendar, date(2026, 9, 1)) == date(2026, 10, 21)


def test_periods_are_branch_weeks_and_months() -> None:
    assert period_of(R.REPORT_KIND_WEEKLY, date(2026, 3, 1)) == (date(2026, 2, 23),
                                                                 date(2026, 3, 1))
    assert period_of(R.REPORT_KIND_MONTHLY, date(2024, 2, 10)) == (date(2024, 2, 1),
                                                                   date(2024, 2, 29))


async def test_passes_just_after_local_midnight(tmp_path: Path, nats_url: str) -> None:
    # 1 March 2026, 00:05 in Shanghai = 28 Feb 16:05 UTC: February is over in branch time
    clock = FakeClock(datetime(2026, 2, 28, 16, 5, tzinfo=UTC))
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=clock) as one:
        # February's monthly report is not due before 20 March; yesterday's daily and last
        # week's weekly are
        assert await insight_server.generate_reports(one.ctx) == 2
        async with channel(one) as ch:
            stub = InsightServiceStub(ch)
            listed = (await stub.ListReports(api.ListReportsRequest(),
                                             metadata=auth("sup-1", "supervisor"))).reports
            assert sorted((r.kind, r.period_start) for r in listed) == [
                (R.REPORT_KIND_DAILY, "2026-02-28"), (R.REPORT_KIND_WEEKLY, "2026-02-16")]
        clock.set(datetime(2026, 3, 19, 16, 0, tzinfo=UTC))  # 20 March 00:00 local
        assert await insight_server.generate_reports(one.ctx) == 3
        assert await insight_server.generate_reports(one.ctx) == 0
        # the sample for February is drawn from 1 March on (none: no events here)
        assert await insight_server.draw_samples(one.ctx) == 0

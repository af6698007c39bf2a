"""Performance reviews: targets from the campaign quota (x working days of the business
calendar) and the SLA norms, actuals counted from the events, key events, the interview with
an improvement plan, and the appeal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import chinese_calendar
import grpc
import pytest
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1 import inspection_pb2, performance_pb2
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub
from branch.remote.v1 import events_pb2 as remote_events

from services.common.clock import FakeClock
from services.insight.server import SPEC
from tests.harness import auth, bad_fields, channel, eventually, make_settings, running
from tests.insight.month import (
    AGENTS,
    CAMPAIGN_FROM,
    CAMPAIGN_QUOTA,
    Published,
    build_month,
    publish_all,
)

if TYPE_CHECKING:
    from branch.insight.v1.insight_service_pb2_grpc import InsightServiceAsyncStub

LEAD = auth("sup-1", "supervisor")
OTHER_LEAD = auth("sup-2", "supervisor")
INSPECTOR = auth("qi-1", "quality_inspector")
NOW = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
P = performance_pb2


@pytest.fixture
async def events_and_stub(tmp_path: Path, nats_url: str
                          ) -> AsyncIterator[tuple[list[Published], InsightServiceAsyncStub]]:
    events = build_month(2026, 2, seed=5)
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=FakeClock(NOW)) as one:
        await publish_all(nats_url, events)
        await eventually(lambda: sum(c.handled for c in one.consumers) >= len(events),
                         timeout=30)
        async with channel(one) as ch:
            yield events, InsightServiceStub(ch)


async def test_review_cycle(
        events_and_stub: tuple[list[Published], InsightServiceAsyncStub]) -> None:
    events, stub = events_and_stub
    me = AGENTS[0]
    mine = auth(me, "service_agent")
    # an inspection scored, so the inspection actual exists
    await stub.DrawSamples(api.DrawSamplesRequest(month="2026-02", per_person=1),
                           metadata=INSPECTOR)
    item = (await stub.ListInspections(api.ListInspectionsRequest(person_id=me),
                                       metadata=INSPECTOR)).inspections[0]
    card = await stub.GetScorecard(api.GetScorecardRequest(id="default"), metadata=INSPECTOR)
    await stub.ScoreInspection(api.ScoreInspectionRequest(id=item.id, scores=[
        inspection_pb2.CriterionScore(criterion_key=c.key, score=0 if c.check else 75,
                                      passed=True) for c in card.criteria]),
        metadata=INSPECTOR)

    review = await stub.CreatePerformanceReview(api.CreatePerformanceReviewRequest(
        performance_review=P.PerformanceReview(person_id=me, team="service_agent",
                                               month="2026-02"), request_id="pr-1"),
        metadata=LEAD)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreatePerformanceReview(api.CreatePerformanceReviewRequest(
            performance_review=P.PerformanceReview(person_id=me, team="service_agent",
                                                   month="2026-02")), metadata=LEAD)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    targets = {t.metric: t for t in review.targets}
    days = [date(2026, 2, d) for d in range(CAMPAIGN_FROM, 29)]
    working = sum(1 for d in days if chinese_calendar.is_workday(d))
    assert targets["callbacks"].target == str(CAMPAIGN_QUOTA * working)
    feb = [e for e in events if e.person == me and date(2026, 2, 1) <= e.local_day
           <= date(2026, 2, 28)]
    calls = sum(1 for e in feb if e.subject.endswith("callback.recorded"))
    assert targets["callbacks"].actual == str(calls)
    assert targets["callbacks"].met == (calls >= CAMPAIGN_QUOTA * working)
    resolved = [e.message for e in feb if isinstance(e.message, remote_events.TicketResolved)]
    if resolved:
        within = sum(1 for m in resolved if m.within_sla)
        assert Decimal(targets["sla_compliance_percent"].actual) == (
            Decimal(within * 100) / len(resolved)).quantize(Decimal("0.1"))
    assert targets["inspection_average"].actual == "75.00"
    assert not targets["inspection_average"].met

    good = await stub.CreateKeyEvent(api.CreateKeyEventRequest(key_event=P.KeyEvent(
        review_id=review.id, kind=P.KEY_EVENT_KIND_GOOD, occurred_day="2026-02-12",
        description="calmed an angry client and solved the transfer in one call")),
        metadata=LEAD)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateKeyEvent(api.CreateKeyEventRequest(key_event=P.KeyEvent(
            review_id=review.id, kind=P.KEY_EVENT_KIND_BAD, occurred_day="2026-03-01",
            description="late")), metadata=LEAD)
    assert bad_fields(err.value) == {"key_event.occurred_day"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.AppealPerformanceReview(api.AppealPerformanceReviewRequest(
            id=review.id, reason="too early"), metadata=mine)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    done = await stub.InterviewPerformanceReview(api.InterviewPerformanceReviewRequest(
        id=review.id, interview_summary="callbacks behind quota in the holiday weeks",
        improvement_plan="two extra callback blocks a week; shadow a senior agent"),
        metadata=LEAD)
    assert done.state == P.PERFORMANCE_REVIEW_STATE_INTERVIEWED
    assert [k.id for k in done.key_events] == [good.id]

    other = auth(AGENTS[1], "service_agent")
    for call in (stub.GetPerformanceReview(api.GetPerformanceReviewRequest(id=review.id),
                                           metadata=other),
                 stub.AppealPerformanceReview(api.AppealPerformanceReviewRequest(
                     id=review.id, reason="x"), metadata=other)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await stub.ListPerformanceReviews(api.ListPerformanceReviewsRequest(),
                                              metadata=other)).performance_reviews == []
    appealed = await stub.AppealPerformanceReview(api.AppealPerformanceReviewRequest(
        id=review.id, reason="the campaign list was empty for three days"), metadata=mine)
    assert appealed.state == P.PERFORMANCE_REVIEW_STATE_APPEALED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DecidePerformanceReviewAppeal(api.DecidePerformanceReviewAppealRequest(
            id=review.id, decision="no"), metadata=LEAD)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    closed = await stub.DecidePerformanceReviewAppeal(api.DecidePerformanceReviewAppealRequest(
        id=review.id, decision="target reduced by the empty days; plan stands"),
        metadata=OTHER_LEAD)
    assert closed.state == P.PERFORMANCE_REVIEW_STATE_CLOSED
    seen = await stub.GetPerformanceReview(api.GetPerformanceReviewRequest(id=review.id),
                                           metadata=mine)
    assert seen.appeal_decision.startswith("target reduced")
    assert NOW - timedelta(days=1) < seen.create_time.ToDatetime(tzinfo=UTC) <= NOW

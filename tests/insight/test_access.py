"""Who sees what, the appeal flow, the duty log, and bad input: an agent sees only their own
records (PERMISSION_DENIED otherwise), every refusal names the field or the rule."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from branch.directory.v1 import events_pb2 as directory_events
from branch.directory.v1 import staff_pb2
from branch.insight.v1 import duty_log_pb2, inspection_pb2
from branch.insight.v1 import insight_service_pb2 as api
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub

from services.common.clock import FakeClock
from services.insight.server import SPEC
from tests.harness import (
    SUPERVISOR,
    auth,
    bad_fields,
    channel,
    eventually,
    make_settings,
    running,
)
from tests.insight.month import AGENTS, Published, build_month, publish_all

if TYPE_CHECKING:
    from branch.insight.v1.insight_service_pb2_grpc import InsightServiceAsyncStub

INSPECTOR = auth("qi-1", "quality_inspector")
OTHER_INSPECTOR = auth("qi-2", "quality_inspector")
# 2 March 2026 00:05 in Shanghai: February is over, just after local midnight
NOW = datetime(2026, 3, 1, 16, 5, tzinfo=UTC)
K = inspection_pb2


async def refused(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value


@pytest.fixture
async def stub(tmp_path: Path, nats_url: str) -> AsyncIterator[InsightServiceAsyncStub]:
    events = build_month(2026, 2, seed=11)
    # the directory names the first agent (names beside ids, services/common/names.py)
    events.append(Published("branch.directory.staff.created", directory_events.StaffCreated(
        staff=staff_pb2.Staff(id=AGENTS[0], display_name="张伟", active=True)), NOW))
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=FakeClock(NOW)) as one:
        await publish_all(nats_url, events)
        await eventually(lambda: sum(c.handled for c in one.consumers) >= len(events),
                         timeout=30)
        async with channel(one) as ch:
            yield InsightServiceStub(ch)


def scores(card: K.Scorecard, value: int) -> list[K.CriterionScore]:
    return [K.CriterionScore(criterion_key=c.key, score=0 if c.check else value, passed=True)
            for c in card.criteria]


async def test_agents_see_their_own_and_appeal(stub: InsightServiceAsyncStub) -> None:
    drawn = await stub.DrawSamples(api.DrawSamplesRequest(month="2026-02", per_person=2),
                                   metadata=INSPECTOR)
    assert drawn.drawn > 0
    again = await stub.DrawSamples(api.DrawSamplesRequest(month="2026-02", per_person=5),
                                   metadata=INSPECTOR)
    assert again.drawn == 0 and again.people == drawn.people
    me, other = AGENTS[0], AGENTS[1]
    mine = auth(me, "service_agent")
    own = (await stub.ListInspections(api.ListInspectionsRequest(), metadata=mine)).inspections
    assert own and {i.person_id for i in own} == {me} and len(own) <= 2
    assert {i.person_display_name for i in own} == {"张伟"}
    everyone = (await stub.ListInspections(api.ListInspectionsRequest(page_size=500),
                                           metadata=INSPECTOR)).inspections
    theirs = next(i for i in everyone if i.person_id == other)
    await refused(stub.GetInspection(api.GetInspectionRequest(id=theirs.id), metadata=mine),
                  grpc.StatusCode.PERMISSION_DENIED)
    await refused(stub.ListInspections(api.ListInspectionsRequest(person_id=other),
                                       metadata=mine), grpc.StatusCode.PERMISSION_DENIED)
    await refused(stub.GetInspectionSummary(api.GetInspectionSummaryRequest(
        month="2026-02", person_id=other), metadata=mine), grpc.StatusCode.PERMISSION_DENIED)
    await refused(stub.ScoreInspection(api.ScoreInspectionRequest(id=own[0].id),
                                       metadata=mine), grpc.StatusCode.PERMISSION_DENIED)
    await refused(stub.ListInspections(api.ListInspectionsRequest()),
                  grpc.StatusCode.UNAUTHENTICATED)

    card = await stub.GetScorecard(api.GetScorecardRequest(id=own[0].scorecard_id),
                                   metadata=mine)
    # bad scores: a criterion missing and one out of range; nothing changes
    partial = scores(card, 80)[1:]
    partial[0].score = 101
    err = await refused(stub.ScoreInspection(api.ScoreInspectionRequest(
        id=own[0].id, scores=partial), metadata=INSPECTOR), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"scores", "scores[0].score"}
    scored = await stub.ScoreInspection(api.ScoreInspectionRequest(
        id=own[0].id, scores=scores(card, 70)), metadata=INSPECTOR)
    assert scored.total_score == "70.00" and not scored.compliance_flagged
    await refused(stub.ScoreInspection(api.ScoreInspectionRequest(
        id=own[0].id, scores=scores(card, 90)), metadata=INSPECTOR),
        grpc.StatusCode.FAILED_PRECONDITION)

    # the appeal: only the person, once at a time; decided by someone else than the inspector
    await refused(stub.CreateAppeal(api.CreateAppealRequest(appeal=K.Appeal(
        inspection_id=own[0].id, reason="x")), metadata=auth(other, "service_agent")),
        grpc.StatusCode.PERMISSION_DENIED)
    err = await refused(stub.CreateAppeal(api.CreateAppealRequest(appeal=K.Appeal(
        inspection_id=own[0].id, reason=" ")), metadata=mine), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"appeal.reason"}
    appeal = await stub.CreateAppeal(api.CreateAppealRequest(appeal=K.Appeal(
        inspection_id=own[0].id, reason="the client hung up; wording was fine"),
        request_id="r-1"), metadata=mine)
    retried = await stub.CreateAppeal(api.CreateAppealRequest(appeal=K.Appeal(
        inspection_id=own[0].id, reason="the client hung up; wording was fine"),
        request_id="r-1"), metadata=mine)
    assert retried.id == appeal.id
    await refused(stub.CreateAppeal(api.CreateAppealRequest(appeal=K.Appeal(
        inspection_id=own[0].id, reason="again")), metadata=mine),
        grpc.StatusCode.FAILED_PRECONDITION)
    listed = (await stub.ListAppeals(api.ListAppealsRequest(),
                                     metadata=auth(other, "service_agent"))).appeals
    assert listed == []
    await refused(stub.DecideAppeal(api.DecideAppealRequest(
        id=appeal.id, state=K.APPEAL_STATE_UPHELD, decision="ok", revised_score="85"),
        metadata=INSPECTOR), grpc.StatusCode.FAILED_PRECONDITION)
    err = await refused(stub.DecideAppeal(api.DecideAppealRequest(
        id=appeal.id, state=K.APPEAL_STATE_UPHELD, decision="ok"), metadata=OTHER_INSPECTOR),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"revised_score"}
    decided = await stub.DecideAppeal(api.DecideAppealRequest(
        id=appeal.id, state=K.APPEAL_STATE_UPHELD, decision="recording reviewed",
        revised_score="85"), metadata=SUPERVISOR)
    assert decided.state == K.APPEAL_STATE_UPHELD and decided.revised_score == "85.00"
    after = await stub.GetInspection(api.GetInspectionRequest(id=own[0].id), metadata=mine)
    assert after.total_score == "85.00"
    summary = await stub.GetInspectionSummary(api.GetInspectionSummaryRequest(
        month="2026-02"), metadata=mine)
    assert [(x.subject, x.scored, x.average_score, x.appeals_upheld)
            for x in summary.people] == [(me, 1, "85.00", 1)]
    assert list(summary.teams) == []


async def test_failed_check_flags_and_bad_input(stub: InsightServiceAsyncStub) -> None:
    err = await refused(stub.DrawSamples(api.DrawSamplesRequest(month="2026-13", per_person=9),
                                         metadata=INSPECTOR), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"month"} or bad_fields(err) == {"month", "per_person"}
    err = await refused(stub.DrawSamples(api.DrawSamplesRequest(month="2026-03"),
                                         metadata=INSPECTOR), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"month"}  # not over yet in branch time
    await stub.DrawSamples(api.DrawSamplesRequest(month="2026-02"), metadata=INSPECTOR)
    pending = (await stub.ListInspections(api.ListInspectionsRequest(
        state=K.INSPECTION_STATE_PENDING, page_size=1), metadata=INSPECTOR)).inspections[0]
    card = await stub.GetScorecard(api.GetScorecardRequest(id="default"), metadata=INSPECTOR)
    given = scores(card, 90)
    for s in given:
        if s.criterion_key in ("risk_disclosed", "suitability_respected"):
            s.passed = False
    flagged = await stub.ScoreInspection(api.ScoreInspectionRequest(
        id=pending.id, scores=given), metadata=INSPECTOR)
    assert flagged.compliance_flagged and flagged.total_score == "90.00"
    compliance = auth("co-1", "compliance")
    seen = await stub.GetInspection(api.GetInspectionRequest(id=pending.id),
                                    metadata=compliance)
    assert seen.compliance_flagged
    follow_up = (await stub.ListInspections(api.ListInspectionsRequest(
        compliance_flagged=True), metadata=compliance)).inspections
    assert [i.id for i in follow_up] == [pending.id]

    # a new scorecard: weights must add up to 100
    err = await refused(stub.CreateScorecard(api.CreateScorecardRequest(scorecard=K.Scorecard(
        title="t", criteria=[K.Criterion(key="a", title="A", weight=60),
                             K.Criterion(key="b", title="B", weight=30)])),
        metadata=INSPECTOR), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"scorecard.criteria"}


async def test_duty_log_is_append_only_and_for_shift_leads(stub: InsightServiceAsyncStub) -> None:
    entry = await stub.CreateDutyLogEntry(api.CreateDutyLogEntryRequest(
        entry=duty_log_pb2.DutyLogEntry(category="handover", text="2 tickets waiting > 3 days"),
        request_id="d-1"), metadata=SUPERVISOR)
    assert entry.shift_day == "2026-03-02"  # branch-local, not the UTC date
    err = await refused(stub.CreateDutyLogEntry(api.CreateDutyLogEntryRequest(
        entry=duty_log_pb2.DutyLogEntry(text="")), metadata=SUPERVISOR),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_fields(err) == {"entry.text"}
    await refused(stub.CreateDutyLogEntry(api.CreateDutyLogEntryRequest(
        entry=duty_log_pb2.DutyLogEntry(text="x")), metadata=auth("a", "service_agent")),
        grpc.StatusCode.PERMISSION_DENIED)
    listed = await stub.ListDutyLogEntries(api.ListDutyLogEntriesRequest(
        shift_day="2026-03-02"), metadata=SUPERVISOR)
    assert [e.id for e in listed.entries] == [entry.id]
    assert not hasattr(api, "UpdateDutyLogEntryRequest")
    assert not hasattr(api, "DeleteDutyLogEntryRequest")

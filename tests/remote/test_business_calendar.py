"""Issue 12 cases 7 and 8 and the callback quota, through the real remote service: business
time follows the branch's calendar (holidays off, make-up working days on) in its zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from branch.directory.v1 import calendar_pb2 as cpb
from branch.directory.v1 import staff_pb2
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.remote.v1 import campaign_pb2 as cpb_campaign
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import ticket_pb2 as tpb
from sqlmodel import select

from services.common.nats_link import free_port
from services.common.server import ServiceRunner
from services.directory.server import SPEC as DIRECTORY
from services.remote.models import QuotaMiss, TicketEscalation
from services.remote.server import SPEC as REMOTE
from services.remote.server import check_quotas, check_sla
from tests.harness import SUPERVISOR, channel, eventually, make_settings, running
from tests.remote.conftest import Env
from tests.remote.test_campaigns import campaign
from tests.remote.test_tickets import on_duty, open_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sh(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> datetime:
    return datetime(y, m, d, h, minute, tzinfo=SHANGHAI).astimezone(UTC)


async def resolution_levels(env: Env, ticket_id: str) -> list[int]:
    async with env.remote.ctx.db.read() as session:
        rows = (await session.exec(select(TicketEscalation).where(
            TicketEscalation.ticket_id == ticket_id,
            TicketEscalation.target == "resolution"))).all()
    return sorted(r.level for r in rows)


async def test_escalation_levels_wait_for_working_days(env: Env) -> None:
    # case 7: normal ticket (1,440 business minutes) opened Thursday 7 March 2024 16:00
    lead = await env.staff(staff_pb2.ROLE_SUPERVISOR)
    _, md = await on_duty(env, team_lead_id=lead)
    env.clock.set(sh(2024, 3, 7, 16))
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="on it"),
                                 metadata=md)
    assert made.resolution.due_time.ToDatetime(UTC) == sh(2024, 3, 8, 16)
    steps = [
        (sh(2024, 3, 8, 15, 59), []),
        (sh(2024, 3, 8, 16), [1]),          # Friday 16:00: due, level 1 (owner)
        (sh(2024, 3, 9, 4), [1]),           # Saturday 04:00: the wall clock said level 2
        (sh(2024, 3, 9, 16), [1]),          # Saturday 16:00: the wall clock said level 3
        (sh(2024, 3, 11, 3, 59), [1]),
        (sh(2024, 3, 11, 4), [1, 2]),       # Monday 04:00: level 2 (team lead)
        (sh(2024, 3, 11, 15, 59), [1, 2]),
        (sh(2024, 3, 11, 16), [1, 2, 3]),   # Monday 16:00: level 3 (supervisor)
    ]
    for when, levels in steps:
        env.clock.set(when)
        await check_sla(env.remote.ctx)
        assert await resolution_levels(env, made.id) == levels, when


@pytest.mark.parametrize(("opened", "due"), [
    (sh(2024, 9, 30, 16), sh(2024, 10, 8, 16)),        # case 8: not National Day
    (sh(2024, 9, 30, 0, 5), sh(2024, 10, 8, 0, 5)),    # just after local midnight
    (sh(2024, 10, 11, 16), sh(2024, 10, 12, 16)),      # the make-up Saturday is worked
    (sh(2026, 2, 13, 16), sh(2026, 2, 14, 16)),        # 2026's Spring Festival make-up day
    (sh(2026, 2, 14, 20), sh(2026, 2, 24, 20)),        # ... then 15-23 February off
])
async def test_resolution_due_time_follows_the_calendar(env: Env, opened: datetime,
                                                        due: datetime) -> None:
    _, md = await on_duty(env)
    env.clock.set(opened)
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    assert made.resolution.business_days
    assert made.resolution.due_time.ToDatetime(UTC) == due


async def test_quota_misses_counted_on_working_days_only(env: Env) -> None:
    agent, _ = await env.agent()
    await env.client()
    env.clock.set(sh(2024, 9, 26, 9, 30))
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], daily_quota=1, start_date="2024-09-27", end_date="2024-10-31")),
        metadata=SUPERVISOR)

    async def missed_days() -> list[date]:
        async with env.remote.ctx.db.read() as session:
            rows = (await session.exec(select(QuotaMiss).where(
                QuotaMiss.campaign_id == made.id))).all()
        return sorted(r.day for r in rows)

    # Monday 30 September 00:05: Friday 27 and the make-up Sunday 29 were working days
    env.clock.set(sh(2024, 9, 30, 0, 5))
    assert await check_quotas(env.remote.ctx) == 2
    assert await missed_days() == [date(2024, 9, 27), date(2024, 9, 29)]
    # Monday 7 October (a holiday): of the last week only Monday 30 September was worked
    env.clock.set(sh(2024, 10, 7, 9))
    assert await check_quotas(env.remote.ctx) == 1
    # Monday 14 October 23:59: 8-11 October and the make-up Saturday 12th
    env.clock.set(sh(2024, 10, 14, 23, 59))
    assert await check_quotas(env.remote.ctx) == 5
    assert await missed_days() == [
        date(2024, 9, 27), date(2024, 9, 29), date(2024, 9, 30), date(2024, 10, 8),
        date(2024, 10, 9), date(2024, 10, 10), date(2024, 10, 11), date(2024, 10, 12)]


async def test_operator_overrides_reach_every_replica_without_a_restart(env_db: Env) -> None:
    env = env_db  # SQLite, and PostgreSQL when configured
    # December 2026: the State Council's 2027 notice is out, the library has no 2027 yet
    monday = date(2027, 2, 8)
    assert env.remote.ctx.calendar.is_working_day(monday)
    await env.dir.SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
        date=monday.isoformat(), working=False, note="Spring Festival 2027")),
        metadata=SUPERVISOR)
    # the running replica hears branch.directory.calendar.changed (refresh is 60 s away)
    await eventually(lambda: not env.remote.ctx.calendar.is_working_day(monday))
    # a replica started now has it before it serves
    async with running(REMOTE, env.settings, clock=env.clock, run_consumers=False) as second:
        assert not second.ctx.calendar.is_working_day(monday)
    _, md = await on_duty(env)
    env.clock.set(sh(2027, 2, 5, 16))  # Friday
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    assert made.resolution.due_time.ToDatetime(UTC) == sh(2027, 2, 9, 16)
    await env.dir.DeleteCalendarDay(cpb.DeleteCalendarDayRequest(date=monday.isoformat()),
                                    metadata=SUPERVISOR)
    await eventually(lambda: env.remote.ctx.calendar.is_working_day(monday))


async def test_overrides_load_once_the_directory_comes_up(tmp_path: Path, nats_url: str) -> None:
    """remote started while the directory is down serves with the library's calendar and
    picks the overrides up in the background when the directory is back."""

    day = date(2027, 10, 8)  # a Friday; say the 2027 notice makes it a holiday
    dir_settings = make_settings(tmp_path / "dir", nats_url)
    async with running(DIRECTORY, dir_settings) as directory:
        async with channel(directory) as ch:
            await DirectoryServiceStub(ch).SetCalendarDay(cpb.SetCalendarDayRequest(
                day=cpb.CalendarDay(date=day.isoformat(), working=False)), metadata=SUPERVISOR)
    port = free_port()
    settings = make_settings(tmp_path / "rem", nats_url, directory_addr=f"127.0.0.1:{port}")
    async with running(REMOTE, settings, run_consumers=False) as remote:
        assert remote.ctx.calendar.is_working_day(day)  # not loaded: the library's word
        runner = ServiceRunner(DIRECTORY, dir_settings, port=port)
        await runner.start()
        try:
            await eventually(lambda: not remote.ctx.calendar.is_working_day(day), timeout=20)
        finally:
            await runner.stop()


async def test_new_account_window_ending_on_a_holiday_ends_on_the_next_working_day(
        env: Env) -> None:
    agent, md = await env.agent()
    env.clock.set(sh(2024, 9, 10, 0, 5))
    sep1 = await env.client(opened_on="2024-09-01")    # a month later: 1 October, a holiday
    sep7 = await env.client(opened_on="2024-09-07")    # 7 October, a holiday
    aug31 = await env.client(opened_on="2024-08-31")   # 30 September, a Monday: unchanged
    sep14 = await env.client(opened_on="2024-09-14")   # 14 October, Monday: unchanged
    made = await env.stub.CreateCampaign(api.CreateCampaignRequest(campaign=campaign(
        [agent], name="New accounts", kind=cpb_campaign.CAMPAIGN_KIND_NEW_ACCOUNTS,
        start_date="2024-09-10", end_date="2024-10-31")), metadata=SUPERVISOR)
    targets = await env.stub.ListTargets(api.ListTargetsRequest(campaign_id=made.id),
                                         metadata=SUPERVISOR)
    due = {t.client_id: t.due_date for t in targets.targets}
    assert due == {sep1.id: "2024-10-08", sep7.id: "2024-10-08", aug31.id: "2024-09-30",
                   sep14.id: "2024-10-14"}
    # Tuesday 8 October 09:00: the 1 and 7 September accounts are still in time
    env.clock.set(sh(2024, 10, 8, 9))
    progress = await env.stub.GetRegulatoryProgress(
        api.GetRegulatoryProgressRequest(year=2024), metadata=SUPERVISOR)
    assert set(progress.overdue_client_ids) == {aug31.id}
    assert (progress.new_accounts_overdue, progress.new_accounts_open) == (1, 3)


@pytest.mark.parametrize(("week_of", "monday", "working_days"), [
    ("2024-10-03", "2024-09-30", 1),   # National Day week
    ("2024-10-13", "2024-10-07", 5),   # 7 October off, Saturday 12th worked
    ("2026-02-18", "2026-02-16", 0),   # Spring Festival 2026: 16-22 February all off
    ("2026-03-04", "2026-03-02", 5),
])
async def test_weekly_statistics_cut_in_the_branch_zone_with_its_working_days(
        env: Env, week_of: str, monday: str, working_days: int) -> None:
    _, md = await on_duty(env)
    # a ticket opened at 00:05 local on the week's Monday (still Sunday in UTC) is that week's
    first = date.fromisoformat(monday)
    env.clock.set(sh(first.year, first.month, first.day, 0, 5))
    await open_ticket(env, md)
    env.clock.set(sh(2026, 11, 30, 9))
    week = await env.stub.GetWeeklyStatistics(api.GetWeeklyStatisticsRequest(week_of=week_of),
                                              metadata=SUPERVISOR)
    assert (week.week_start, week.working_days) == (monday, working_days)
    assert week.total.tickets_accepted == 1


async def test_time_left_counts_business_time_at_the_edges(env: Env) -> None:
    """SlaClock.remaining_seconds, counted by the service at its clock's now: a normal
    ticket's resolution (1,440 business minutes) opened Thursday 7 March 2024 16:00 is due
    Friday 16:00; the weekend does not count before or after the due time."""
    _, md = await on_duty(env)
    env.clock.set(sh(2024, 3, 7, 16))
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    assert made.resolution.remaining_seconds == 24 * 3600
    frt_due = made.first_response.due_time.ToDatetime(UTC)
    cases = [
        (sh(2024, 3, 8, 0, 5), 15 * 3600 + 55 * 60),   # Friday just after local midnight
        (sh(2024, 3, 8, 15), 3600),
        (sh(2024, 3, 8, 16), 0),
        (sh(2024, 3, 9, 10), -8 * 3600),               # Saturday: only Friday's 8 h past due
        (sh(2024, 3, 11, 0, 5), -(8 * 3600 + 5 * 60)),  # Monday just after local midnight
    ]
    for when, left in cases:
        env.clock.set(when)
        got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
        assert got.resolution.HasField("remaining_seconds")
        assert got.resolution.remaining_seconds == left, when
        # the first response's clock is round-the-clock: plain wall time
        assert got.first_response.remaining_seconds == round((frt_due - when).total_seconds())
        listed = await env.stub.ListTickets(api.ListTicketsRequest(), metadata=md)
        assert [t.resolution.remaining_seconds for t in listed.tickets
                if t.id == made.id] == [left]
    # met: no time left to count
    env.clock.set(sh(2024, 3, 11, 9))
    got = await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="on it"),
                                       metadata=md)
    assert not got.first_response.HasField("remaining_seconds")
    assert got.resolution.remaining_seconds == -(8 * 3600 + 9 * 3600)


async def test_time_left_skips_a_holiday_and_freezes_while_paused(env: Env) -> None:
    # opened Monday 30 September 2024 16:00, due Tuesday 8 October 16:00 (National Day)
    _, md = await on_duty(env)
    env.clock.set(sh(2024, 9, 30, 16))
    made = await open_ticket(env, md, priority=tpb.PRIORITY_NORMAL)
    await env.stub.RespondTicket(api.RespondTicketRequest(id=made.id, note="on it"),
                                 metadata=md)
    env.clock.set(sh(2024, 10, 1, 0, 5))  # the holiday's first minutes: 16 h of 8 October
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert got.resolution.remaining_seconds == 16 * 3600
    env.clock.set(sh(2024, 10, 8, 10))  # 6 h left
    paused = await env.stub.PauseTicket(api.PauseTicketRequest(
        id=made.id, reason=tpb.PAUSE_REASON_WAITING_THIRD_PARTY, note="exchange"), metadata=md)
    assert paused.resolution.remaining_seconds == 6 * 3600
    env.clock.set(sh(2024, 10, 9, 9))  # past the old due time: still frozen
    got = await env.stub.GetTicket(api.GetTicketRequest(id=made.id), metadata=md)
    assert got.resolution.paused and got.resolution.remaining_seconds == 6 * 3600

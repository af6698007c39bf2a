from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from branch.vip.v1 import rota_pb2
from branch.vip.v1 import vip_service_pb2 as api

from services.common.clock import FakeClock
from services.common.protos import ts
from tests.harness import SUPERVISOR, auth, bad_fields
from tests.vip.support import ROLE, Branch, branch, broker

BERLIN = ZoneInfo("Europe/Berlin")


def local(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=BERLIN)


async def plan_local_rota(b: Branch, brokers: list[str], first_day: datetime, days: int) -> None:
    """Three shifts a day at 00, 08 and 16 local wall-clock time: covers every hour, however
    long the local day is."""
    for d in range(days):
        day = (first_day.replace(tzinfo=None) + timedelta(days=d))
        for i, hour in enumerate((0, 8, 16)):
            start = day.replace(hour=hour).replace(tzinfo=BERLIN)
            end_naive = day.replace(hour=hour) + timedelta(hours=8)
            end = end_naive.replace(tzinfo=BERLIN)
            await b.shift(brokers[(d + i) % len(brokers)], start.astimezone(UTC),
                          end.astimezone(UTC))


async def test_rota_gaps_across_spring_forward_in_berlin(tmp_path: Path) -> None:
    # Sunday 29 March 2026 02:00 CET -> 03:00 CEST: that local day has 23 hours.
    clock = FakeClock(local(2026, 3, 20, 9).astimezone(UTC))
    async with branch(tmp_path, clock=clock, timezone="Europe/Berlin") as b:
        brokers = [await b.staff(ROLE.ROLE_BROKER) for _ in range(3)]
        await plan_local_rota(b, brokers, local(2026, 3, 20), 15)
        report = await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(), metadata=SUPERVISOR)
        assert report.time_zone == "Europe/Berlin"
        assert report.window_hours == 14 * 24 - 1  # the lost hour is not a gap
        assert list(report.gaps) == []
        assert report.uncovered_hours == 0
        # a missing shift after the change is reported in local summer time
        await b.vip.DeleteShift(api.DeleteShiftRequest(id=(await _shift_at(
            b, local(2026, 3, 30, 9))).id), metadata=SUPERVISOR)
        report = await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(), metadata=SUPERVISOR)
        assert len(report.gaps) == 1
        gap = report.gaps[0]
        assert gap.hours == 8
        assert gap.local_start == "2026-03-30T08:00:00+02:00"
        assert gap.local_end == "2026-03-30T16:00:00+02:00"


async def test_rota_gap_hours_across_fall_back(tmp_path: Path) -> None:
    # Sunday 25 October 2026 03:00 CEST -> 02:00 CET: that local day has 25 hours.
    clock = FakeClock(local(2026, 10, 20, 0).astimezone(UTC))
    async with branch(tmp_path, clock=clock, timezone="Europe/Berlin") as b:
        br = await b.staff(ROLE.ROLE_BROKER)
        # cover everything except the local day of the change
        await plan_local_rota(b, [br], local(2026, 10, 20), 5)
        await plan_local_rota(b, [br], local(2026, 10, 26), 10)
        report = await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(days=14),
                                           metadata=SUPERVISOR)
        assert report.window_hours == 14 * 24 + 1
        assert len(report.gaps) == 1
        assert report.gaps[0].hours == 25
        assert report.uncovered_hours == 25
        assert report.gaps[0].local_start == "2026-10-25T00:00:00+02:00"
        assert report.gaps[0].local_end == "2026-10-26T00:00:00+01:00"


async def test_gaps_for_empty_rota_and_other_roles(b: Branch) -> None:
    report = await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(days=2), metadata=SUPERVISOR)
    # Asia/Shanghai has no DST: two days are 48 hours, starting at the current hour
    assert report.window_hours == 48
    assert report.uncovered_hours == 48
    analyst = await b.staff(ROLE.ROLE_ANALYST)
    now = b.clock.now()
    await b.shift(analyst, now - timedelta(hours=1), now + timedelta(hours=10),
                  role=rota_pb2.SHIFT_ROLE_ANALYST)
    report = await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(
        days=1, role=rota_pb2.SHIFT_ROLE_ANALYST), metadata=SUPERVISOR)
    assert report.uncovered_hours == 24 - 10.5  # window starts on the hour (01:00 UTC)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(days=100, role=rota_pb2.ShiftRole.ValueType(9)),
                                  metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"days", "role"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(), metadata=auth("x", "broker"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_on_call_now_and_shift_validation(b: Branch) -> None:
    br, br2 = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
    sup = await b.staff(ROLE.ROLE_SUPERVISOR)
    now = b.clock.now()
    s1 = await b.shift(br, now - timedelta(hours=2), now + timedelta(hours=6))
    await b.shift(br2, now + timedelta(hours=6), now + timedelta(hours=14))
    await b.shift(sup, now - timedelta(hours=1), now + timedelta(hours=7),
                  role=rota_pb2.SHIFT_ROLE_SUPERVISOR)
    on_call = await b.vip.GetOnCall(api.GetOnCallRequest(), metadata=broker(br2))
    assert [s.staff_id for s in on_call.brokers] == [br]
    assert [s.staff_id for s in on_call.supervisors] == [sup]
    later = await b.vip.GetOnCall(api.GetOnCallRequest(time=ts(now + timedelta(hours=7))),
                                  metadata=broker(br2))
    assert [s.staff_id for s in later.brokers] == [br2]
    assert list(later.supervisors) == []
    listed = await b.vip.ListShifts(api.ListShiftsRequest(page_size=1), metadata=broker(br))
    assert listed.shifts[0].id == s1.id and listed.next_page_token
    rest = await b.vip.ListShifts(api.ListShiftsRequest(page_size=5,
                                                        page_token=listed.next_page_token),
                                  metadata=broker(br))
    assert len(rest.shifts) == 2
    # idempotent create
    req = api.CreateShiftRequest(shift=rota_pb2.Shift(
        staff_id=br, role=rota_pb2.SHIFT_ROLE_BROKER, start_time=ts(now + timedelta(days=1)),
        end_time=ts(now + timedelta(days=1, hours=8))), request_id="shift-1")
    first = await b.vip.CreateShift(req, metadata=SUPERVISOR)
    again = await b.vip.CreateShift(req, metadata=SUPERVISOR)
    assert first.id == again.id
    # bad fields
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CreateShift(api.CreateShiftRequest(shift=rota_pb2.Shift(
            staff_id=sup, role=rota_pb2.SHIFT_ROLE_BROKER, start_time=ts(now),
            end_time=ts(now - timedelta(hours=1)))), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"shift.staff_id", "shift.end_time"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CreateShift(api.CreateShiftRequest(shift=rota_pb2.Shift(
            start_time=ts(now), end_time=ts(now + timedelta(hours=30)))), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"shift.staff_id", "shift.role", "shift.end_time"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CreateShift(req, metadata=broker(br))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.DeleteShift(api.DeleteShiftRequest(id="missing"), metadata=SUPERVISOR)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def _shift_at(b: Branch, when: datetime) -> rota_pb2.Shift:
    on_call = await b.vip.GetOnCall(api.GetOnCallRequest(time=ts(when.astimezone(UTC))),
                                    metadata=SUPERVISOR)
    return on_call.brokers[0]


LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize("now_local", [datetime(2026, 3, 20, 0, 5), datetime(2026, 3, 20, 23, 30)])
async def test_shift_length_is_the_wall_clock_day_across_both_london_changes(
        tmp_path: Path, now_local: datetime) -> None:
    # issue 12 case 11. Autumn: Sunday 25 October 2026 02:00 BST -> 01:00 GMT, so Saturday
    # 09:00 to Sunday 09:00 is 25 hours elapsed; spring: Sunday 29 March 2026 01:00 GMT ->
    # 02:00 BST, 23 hours. Both are a 24-hour shift on the branch's clock.
    clock = FakeClock(now_local.replace(tzinfo=LONDON).astimezone(UTC))
    async with branch(tmp_path, clock=clock, timezone="Europe/London") as b:
        br = await b.staff(ROLE.ROLE_BROKER)

        def at(y: int, m: int, d: int, h: int, minute: int = 0) -> datetime:
            return datetime(y, m, d, h, minute, tzinfo=LONDON).astimezone(UTC)

        autumn = await b.shift(br, at(2026, 10, 24, 9), at(2026, 10, 25, 9))
        assert (autumn.end_time.ToDatetime() - autumn.start_time.ToDatetime()
                ) == timedelta(hours=25)
        spring = await b.shift(br, at(2026, 3, 28, 9), at(2026, 3, 29, 9))
        assert (spring.end_time.ToDatetime() - spring.start_time.ToDatetime()
                ) == timedelta(hours=23)
        # 09:00 to 09:30 next day is 24.5 hours on the wall clock, though 23.5 elapsed
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.shift(br, at(2026, 3, 28, 9), at(2026, 3, 29, 9, 30))
        assert bad_fields(err.value) == {"shift.end_time"}
        # an ordinary day: 24 h accepted, 24 h 1 min refused
        await b.shift(br, at(2026, 6, 1, 9), at(2026, 6, 2, 9))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.shift(br, at(2026, 6, 3, 9), at(2026, 6, 4, 9, 1))
        assert bad_fields(err.value) == {"shift.end_time"}

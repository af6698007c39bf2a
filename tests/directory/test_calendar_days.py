"""The business calendar's operator overrides: set at run time (next year's notice arrives in
December), audited, published, shown by `branchctl calendar`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.common.v1 import audit_pb2, audit_pb2_grpc
from branch.directory.v1 import calendar_pb2 as cpb

from services.common.server import ServiceRunner
from tests.directory.test_cli import ctl
from tests.harness import ADMIN, SUPERVISOR, auth, bad_fields, channel, collect_events, token

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub


async def test_overrides_set_listed_audited_and_published(directory: ServiceRunner, stub: DirectoryServiceAsyncStub, nats_url: str) -> None:
    # the library has no 2027 notice: the operator adds Spring Festival 2027 and a make-up day
    made = await stub.SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
        date="2027-02-08", working=False, note="国办发明电 2027 holidays")), metadata=SUPERVISOR)
    assert (made.kind, made.source, made.working, made.trading) == (
        "holiday", "override", False, False)
    assert made.set_by and made.update_time.seconds
    sat = await stub.SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
        date="2027-02-20", working=True, note="调休")), metadata=ADMIN)
    assert (sat.kind, sat.working, sat.trading) == ("make-up workday", True, False)
    # replacing an override keeps one row
    again = await stub.SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
        date="2027-02-08", working=False, note="除夕")), metadata=SUPERVISOR)
    assert again.note == "除夕"

    listed = await stub.ListCalendarDays(cpb.ListCalendarDaysRequest(overrides_only=True),
                                         metadata=auth("svc:remote", "service", "service:remote"))
    assert [(d.date, d.working, d.note) for d in listed.days] == [
        ("2027-02-08", False, "除夕"), ("2027-02-20", True, "调休")]
    assert listed.library_first_year == 2004 and listed.library_last_year >= 2026

    span = await stub.ListCalendarDays(cpb.ListCalendarDaysRequest(
        start_date="2024-09-28", end_date="2024-10-13"), metadata=auth("b1", "broker"))
    kinds = {d.date: (d.kind, d.name, d.source) for d in span.days}
    assert kinds["2024-10-01"][:2] == ("holiday", "National Day")
    assert kinds["2024-10-01"][2].startswith("chinese-calendar")
    assert kinds["2024-09-29"][0] == kinds["2024-10-12"][0] == "make-up workday"
    assert kinds["2024-10-08"][0] == "workday" and kinds["2024-10-13"][0] == "weekend"

    await stub.DeleteCalendarDay(cpb.DeleteCalendarDayRequest(date="2027-02-20"),
                                 metadata=SUPERVISOR)
    back = await stub.ListCalendarDays(cpb.ListCalendarDaysRequest(
        start_date="2027-02-20", end_date="2027-02-20"), metadata=SUPERVISOR)
    assert (back.days[0].kind, back.days[0].source) == ("weekend", "weekday rule")

    async with channel(directory) as ch:
        audit = audit_pb2_grpc.AuditServiceStub(ch)
        sets = await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(
            method="SetCalendarDay"), metadata=SUPERVISOR)
        deletes = await audit.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(
            method="DeleteCalendarDay"), metadata=SUPERVISOR)
    assert [r.outcome for r in sets.audit_records] == ["OK"] * 3
    assert [r.outcome for r in deletes.audit_records] == ["OK"]
    # each record names the day it changed
    assert sorted(r.resource for r in sets.audit_records) == [
        "2027-02-08", "2027-02-08", "2027-02-20"]
    assert [r.resource for r in deletes.audit_records] == ["2027-02-20"]

    msgs = await collect_events(nats_url, "branch.directory.calendar.changed", count=1000,
                                timeout=2)
    changes = []
    for m in msgs:
        e = cpb.CalendarDayChanged()
        e.ParseFromString(m.data)
        changes.append((e.day.date, e.removed))
    assert changes[-4:] == [("2027-02-08", False), ("2027-02-20", False),
                            ("2027-02-08", False), ("2027-02-20", True)]


async def test_overrides_refuse_bad_input_and_other_roles(stub: DirectoryServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
            date="2027-02-30", note="x" * 201)), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {"day.date", "day.note"}
    for role in ("broker", "service_agent", "client_manager"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SetCalendarDay(cpb.SetCalendarDayRequest(day=cpb.CalendarDay(
                date="2027-02-08")), metadata=auth("x1", role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteCalendarDay(cpb.DeleteCalendarDayRequest(date="2027-02-08"),
                                     metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListCalendarDays(cpb.ListCalendarDaysRequest(
            start_date="2024-01-01", end_date="2025-06-01"), metadata=ADMIN)
    assert bad_fields(err.value) == {"end_date"}
    listed = await stub.ListCalendarDays(cpb.ListCalendarDaysRequest(overrides_only=True),
                                         metadata=ADMIN)
    assert list(listed.days) == []  # nothing was written


async def test_branchctl_calendar(directory: ServiceRunner, tmp_path: Path) -> None:
    home = tmp_path / "ctl"
    sup = token("sup-1", "supervisor")
    code, out = await ctl(directory, home, "calendar", "show", "--from", "2024-09-28",
                          "--days", "16", tok=sup)
    assert code == 0, out
    assert "National Day" in out and "make-up workday" in out and "2024-10-12" in out
    assert "2024-10-08" not in out  # plain workdays only with --all
    code, out = await ctl(directory, home, "calendar", "set", "2027-02-08", "--holiday",
                          "--note", "notice 2027", tok=sup)
    assert code == 0 and "2027-02-08: holiday (override)" in out
    code, out = await ctl(directory, home, "calendar", "overrides", tok=sup)
    assert code == 0 and "2027-02-08" in out and "notice 2027" in out
    code, out = await ctl(directory, home, "calendar", "set", "2027-02-08", "--working",
                          tok=token("b1", "broker"))
    assert code == 17 and "PERMISSION_DENIED" in out and "Traceback" not in out
    code, out = await ctl(directory, home, "calendar", "unset", "2027-02-08", tok=sup)
    assert code == 0
    code, out = await ctl(directory, home, "calendar", "unset", "2027-02-08", tok=sup)
    assert code == 15 and "NOT_FOUND" in out

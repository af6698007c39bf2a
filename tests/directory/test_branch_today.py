"""Issue 12 case 10: CreateClient's risk_assessed_on is checked against the branch-local
today (BRANCH_TIMEZONE), from the injected clock, at several hours and zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.clock import FakeClock
from services.directory.server import SPEC
from tests.directory.factories import client_msg, make_client
from tests.harness import ADMIN, bad_fields, channel, make_settings, running


@pytest.mark.parametrize(("zone", "local_now"), [
    ("Asia/Shanghai", datetime(2026, 3, 2, 0, 5)),    # UTC is still 1 March
    ("Asia/Shanghai", datetime(2026, 3, 2, 23, 55)),
    ("Asia/Shanghai", datetime(2024, 2, 29, 0, 5)),
    ("America/New_York", datetime(2026, 3, 2, 21, 0)),  # UTC is already 3 March
    ("Europe/London", datetime(2026, 10, 25, 0, 30)),   # BST, UTC is 24 October 23:30
])
async def test_risk_assessed_on_today_accepted_tomorrow_refused(
        tmp_path: Path, nats_url: str, zone: str, local_now: datetime) -> None:
    now = local_now.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    today = local_now.date()
    async with running(SPEC, make_settings(tmp_path, nats_url, timezone=zone),
                       clock=FakeClock(now)) as runner:
        async with channel(runner) as ch:
            stub = DirectoryServiceStub(ch)
            made = await make_client(stub, risk_assessed_on=today.isoformat())
            assert made.risk_assessed_on == today.isoformat()
            assert not made.risk_assessment_expired
            tomorrow = (today + timedelta(days=1)).isoformat()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CreateClient(api.CreateClientRequest(client=client_msg(
                    risk_assessed_on=tomorrow)), metadata=ADMIN)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad_fields(err.value) == {"client.risk_assessed_on"}
            listed = await stub.ListClients(api.ListClientsRequest(), metadata=ADMIN)
            assert [c.id for c in listed.clients] == [made.id]  # nothing else written


async def test_assessment_validity_is_a_calendar_period(tmp_path: Path, nats_url: str) -> None:
    # issue 12 case 9 through the directory: assessed 1 March 2022, on 29 February 2024
    # (00:05 in Shanghai) it is still valid, and through 1 March 2024
    clock = FakeClock(datetime(2024, 2, 29, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai")))
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=clock) as runner:
        async with channel(runner) as ch:
            stub = DirectoryServiceStub(ch)
            old = await make_client(stub, risk_assessed_on="2022-03-01")
            assert not old.risk_assessment_expired
            clock.set(datetime(2024, 3, 1, 23, 59, tzinfo=ZoneInfo("Asia/Shanghai")))
            got = await stub.GetClient(api.GetClientRequest(id=old.id), metadata=ADMIN)
            assert not got.risk_assessment_expired
            clock.advance(minutes=1)  # 00:00 on 2 March local
            got = await stub.GetClient(api.GetClientRequest(id=old.id), metadata=ADMIN)
            assert got.risk_assessment_expired
            assert date.fromisoformat(got.risk_assessed_on) == date(2022, 3, 1)

"""Bad timestamps, dates and page tokens are INVALID_ARGUMENT naming the field, never INTERNAL,
and change nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc
import pytest
from branch.vip.v1 import rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.pagination import encode_token
from tests.harness import SUPERVISOR, bad_fields
from tests.vip.support import ROLE, Branch, broker

FAR = Timestamp(seconds=253402300799)  # 9999-12-31: valid protobuf, overflows "+ 14 days"
EARLY = Timestamp(seconds=-62135596800)  # 0001-01-01: overflows a time-zone conversion
INVALID = Timestamp(seconds=10**12)  # outside protobuf's range


async def test_bad_times_dates_and_tokens_are_invalid_argument(b: Branch) -> None:
    br = await b.staff(ROLE.ROLE_BROKER)
    cases: list[tuple[Awaitable[Any], set[str]]] = [
        (b.vip.GetInbox(api.GetInboxRequest(page_token=encode_token("x", "y")),
                        metadata=broker(br)), {"page_token"}),
        (b.vip.GetInbox(api.GetInboxRequest(page_token=encode_token("2026-03-02T01:00:00", "y")),
                        metadata=broker(br)), {"page_token"}),  # naive time
        (b.vip.ListShifts(api.ListShiftsRequest(page_token=encode_token(1, "y")),
                          metadata=SUPERVISOR), {"page_token"}),
        (b.vip.ListShifts(api.ListShiftsRequest(start_time=FAR, role=rota_pb2.ShiftRole.ValueType(9)),
                          metadata=SUPERVISOR), {"start_time", "role"}),
        (b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(start_time=FAR), metadata=SUPERVISOR),
         {"start_time"}),
        (b.vip.CheckRotaGaps(api.CheckRotaGapsRequest(start_time=EARLY), metadata=SUPERVISOR),
         {"start_time"}),
        (b.vip.GetOnCall(api.GetOnCallRequest(time=Timestamp(seconds=1, nanos=-5)),
                         metadata=SUPERVISOR), {"time"}),
        (b.vip.ListBreaches(api.ListBreachesRequest(since_time=INVALID), metadata=SUPERVISOR),
         {"since_time"}),
        (b.vip.GetSlaReport(api.GetSlaReportRequest(start_date="9999-12-30",
                                                    end_date="9999-12-31"),
                            metadata=SUPERVISOR), {"start_date", "end_date"}),
        (b.vip.GetSlaReport(api.GetSlaReportRequest(start_date="0001-01-01",
                                                    end_date="2026-1-1"),
                            metadata=SUPERVISOR), {"start_date", "end_date"}),
    ]
    for call, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert bad_fields(err.value) == fields
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.CreateShift(api.CreateShiftRequest(shift=rota_pb2.Shift(
            staff_id=br, role=rota_pb2.SHIFT_ROLE_BROKER, start_time=FAR,
            end_time=Timestamp(seconds=253402300000))), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"shift.start_time", "shift.end_time"}
    listed = await b.vip.ListShifts(api.ListShiftsRequest(), metadata=SUPERVISOR)
    assert list(listed.shifts) == []


async def test_nul_characters_are_invalid_argument_on_every_backend(tmp_path: Path,
                                                                    database_url: str) -> None:
    from branch.vip.v1 import advisory_pb2

    from tests.vip.support import branch

    async with branch(tmp_path, database_url=database_url) as b:
        br = await b.staff(ROLE.ROLE_BROKER)
        client_id = await b.key_client(br)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(advisory=advisory_pb2.Advisory(
                client_id=client_id, question="a\x00b", tickers=["OK", "X\x00"])),
                metadata=broker(br))
        # (checked for every request in services.common.request_checks)
        assert bad_fields(err.value) == {"advisory.question", "advisory.tickers[1]"}
        adv = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(
            advisory=advisory_pb2.Advisory(client_id=client_id, question="Q?")),
            metadata=broker(br))
        for call, fields in (
            (b.vip.CloseAdvisory(api.CloseAdvisoryRequest(id=adv.id, reason="x\x00"),
                                 metadata=broker(br)), {"reason"}),
            (b.vip.GetAdvisory(api.GetAdvisoryRequest(id="\x00"), metadata=broker(br)),
             {"id"}),
            (b.vip.GetRelay(api.GetRelayRequest(id="\x00"), metadata=broker(br)), {"id"}),
            (b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id="\x00"),
                                  metadata=broker(br)), {"client_id"}),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert bad_fields(err.value) == fields
        listed = await b.vip.ListAdvisories(api.ListAdvisoriesRequest(client_id=client_id),
                                            metadata=broker(br))
        assert [(a.id, a.state) for a in listed.advisories] == [
            (adv.id, advisory_pb2.ADVISORY_STATE_OPEN)]

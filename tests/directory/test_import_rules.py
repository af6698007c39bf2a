"""ImportTrades rules for real files: dates bounded, ties in import order, dry runs, corporate
actions; the directory runs with its clock frozen at several hours of the branch's day."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import holding_pb2
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.clock import FakeClock
from services.directory import service
from services.directory.server import SPEC
from tests.directory.factories import make_client, make_staff
from tests.harness import ADMIN, auth, bad_fields, channel, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

BUY, SELL = holding_pb2.SIDE_BUY, holding_pb2.SIDE_SELL
Kind = ca_pb2.CorporateActionKind
# 00:05 and 23:55 in Asia/Shanghai (the UTC date differs from the branch's), and mid-day
FROZEN = [datetime(2026, 3, 1, 16, 5, tzinfo=UTC), datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
          datetime(2026, 3, 2, 15, 55, tzinfo=UTC)]


def at(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def stamp(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


def trade(tid: str, client_id: str, side: int, qty: int, price: str, when: Timestamp,
          ticker: str = "600519") -> api.ImportRecord:
    return api.ImportRecord(trade=holding_pb2.Trade(
        trade_id=tid, client_id=client_id, ticker=ticker, side=holding_pb2.Side.ValueType(side),
        quantity=qty, price=price, fee="0", trade_time=when))


def action(ticker: str, ex_date: str, kind: int, **values: str) -> api.ImportRecord:
    return api.ImportRecord(corporate_action=ca_pb2.CorporateAction(
        ticker=ticker, ex_date=ex_date, kind=ca_pb2.CorporateActionKind.ValueType(kind),
        **values))


async def send(stub: DirectoryServiceAsyncStub, records: list[api.ImportRecord], *,
               validate_only: bool = False) -> api.ImportTradesResponse:
    async def gen() -> AsyncIterator[api.ImportTradesRequest]:
        if validate_only:
            yield api.ImportTradesRequest(validate_only=True)  # a header, not a record
        for start in range(0, len(records), 300):
            yield api.ImportTradesRequest(batch=records[start:start + 300])
    return await stub.ImportTrades(gen(), metadata=ADMIN)


async def streamed(stub: DirectoryServiceAsyncStub, client_id: str) -> list[str]:
    return [t async for b in stub.StreamTrades(
        api.StreamTradesRequest(client_id=client_id), metadata=ADMIN) for t in b.columns.trade_ids]


@pytest.fixture(params=FROZEN, ids=["0005-local", "1200-local", "2355-local"])
async def frozen(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str,
                 database_url: str) -> AsyncIterator[tuple[DirectoryServiceAsyncStub, FakeClock]]:
    clock = FakeClock(request.param)
    async with running(SPEC, make_settings(tmp_path, nats_url, database_url),
                       clock=clock) as runner, channel(runner) as ch:
        yield DirectoryServiceStub(ch), clock


async def test_replicas_importing_at_once_keep_each_files_order(
        tmp_path: Path, nats_url: str, database_url: str) -> None:
    """Two directory replicas on one database take import numbers without sharing one."""
    async with running(SPEC, make_settings(tmp_path / "a", nats_url, database_url)) as a, \
            channel(a) as cha:
        settings_b = make_settings(tmp_path / "b", nats_url, database_url or
                                   f"sqlite+aiosqlite:///{(tmp_path / 'a' / 'directory.db')}")
        async with running(SPEC, settings_b) as b, channel(b) as chb:
            stub_a, stub_b = DirectoryServiceStub(cha), DirectoryServiceStub(chb)
            c = await make_client(stub_a)
            second = at(1709604000)
            files = {name: [f"{name}{n:03d}" for n in range(400, 0, -1)] for name in "AB"}
            await asyncio.gather(*[
                send(stub, [trade(i, c.id, BUY, 1, "1", second) for i in files[name]])
                for stub, name in ((stub_a, "A"), (stub_b, "B"))])
            got = await streamed(stub_a, c.id)
            assert got in (files["A"] + files["B"], files["B"] + files["A"])


async def test_trade_times_are_bounded(frozen: tuple[DirectoryServiceAsyncStub, FakeClock]) -> None:
    stub, clock = frozen
    c = await make_client(stub)
    now = clock.now()
    refused = {
        "Y1": at(-62135596800),  # 0001-01-01
        "Y1800": stamp(datetime(1800, 1, 1, tzinfo=UTC)),
        "Y9999": stamp(datetime(9999, 12, 31, tzinfo=UTC)),
        "EVE": stamp(datetime(1990, 11, 30, 15, 59, 59, tzinfo=UTC)),  # 23:59:59 +08:00
        "LATE": stamp(now + timedelta(minutes=6)),
    }
    kept = {
        "OPEN": stamp(datetime(1990, 11, 30, 16, 0, tzinfo=UTC)),  # 1990-12-01 00:00 +08:00
        "SKEW": stamp(now + timedelta(minutes=4)),
        "NOW": stamp(now),
    }
    records = [trade(tid, c.id, BUY, 100, "10", when) for tid, when in
               [*refused.items(), *kept.items()]]
    result = await send(stub, records)
    assert (result.accepted, result.rejected) == (3, 5)
    assert {(r.index, r.field) for r in result.rejections} == {
        (i, "trade.trade_time") for i in range(5)}
    assert sorted(await streamed(stub, c.id)) == sorted(kept)


async def test_same_second_trades_stream_in_import_order(
        frozen: tuple[DirectoryServiceAsyncStub, FakeClock],
        monkeypatch: pytest.MonkeyPatch) -> None:
    stub, _ = frozen
    monkeypatch.setattr(service, "TRADE_BATCH", 500)  # pages of 500: 1200 trades span three
    c = await make_client(stub)
    second = at(1709604000)  # 2024-03-05 10:00:00 +08:00
    # T10 sorts before T9 as text; the file's order must win
    result = await send(stub, [trade("T9", c.id, BUY, 10, "100.00", second),
                               trade("T10", c.id, SELL, 10, "101.00", second)])
    assert result.accepted == 2
    assert await streamed(stub, c.id) == ["T9", "T10"]
    # a later import's trades at the same second come after, whatever their ids
    await send(stub, [trade("A1", c.id, BUY, 1, "1", second), trade("Z0", c.id, BUY, 1, "1",
                                                                     at(1709603999))])
    assert await streamed(stub, c.id) == ["Z0", "T9", "T10", "A1"]
    # the reverse file order is kept too, across the stream's pages
    d = await make_client(stub)
    ids = [f"R{n:04d}" for n in range(1200, 0, -1)]
    await send(stub, [trade(i, d.id, BUY, 1, "1", second) for i in ids])
    assert await streamed(stub, d.id) == ids


async def test_validate_only_counts_without_writing(frozen: tuple[DirectoryServiceAsyncStub, FakeClock]) -> None:
    stub, _ = frozen
    c = await make_client(stub)
    second = at(1709604000)
    records = [
        trade("V1", c.id, BUY, 10, "100", second),
        trade("V1", c.id, BUY, 10, "100", second),  # repeated in the file: a duplicate
        trade("V2", c.id, SELL, 0, "100", second),
        trade("V3", "no-such-client", BUY, 10, "100", second),
        action("600519", "2024-06-03", Kind.CORPORATE_ACTION_KIND_BONUS, shares_per_10="10"),
        api.ImportRecord(holding=api.HoldingSnapshot(client_id=c.id, ticker="600519",
                                                     quantity=10, cost_price="100",
                                                     as_of="2024-03-05")),
    ]
    dry = await send(stub, records, validate_only=True)
    assert (dry.accepted, dry.duplicate, dry.rejected) == (3, 1, 2)
    assert await streamed(stub, c.id) == []
    listed = await stub.ListCorporateActions(ca_pb2.ListCorporateActionsRequest(
        tickers=["600519"]), metadata=ADMIN)
    assert not listed.corporate_actions
    held = await stub.ListHoldings(api.ListHoldingsRequest(client_id=c.id), metadata=ADMIN)
    assert not held.holdings
    real = await send(stub, records)
    assert (real.accepted, real.duplicate, real.rejected) == (3, 1, 2)
    assert list(real.rejections) == list(dry.rejections)
    again = await send(stub, records, validate_only=True)
    assert (again.accepted, again.duplicate, again.rejected) == (0, 4, 2)
    # past the server's 1000-record batches: a repeat in a later batch is still a duplicate
    many = [trade(f"W{n}", c.id, BUY, 1, "1", second) for n in range(1001)]
    many.append(many[0])
    dry = await send(stub, many, validate_only=True)
    assert (dry.accepted, dry.duplicate, dry.rejected) == (1001, 1, 0)
    assert len(await streamed(stub, c.id)) == 1


async def test_corporate_actions_import_and_list(frozen: tuple[DirectoryServiceAsyncStub, FakeClock]) -> None:
    stub, clock = frozen
    c = await make_client(stub)
    good = [
        action("600690", "2024-06-03", Kind.CORPORATE_ACTION_KIND_BONUS, shares_per_10="10"),
        action("000001", "2024-07-01", Kind.CORPORATE_ACTION_KIND_SPLIT, split_ratio="2"),
        action("600036", "2024-07-11", Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND,
               cash_per_10="5"),
        action("600036", "2024-07-11", Kind.CORPORATE_ACTION_KIND_BONUS, shares_per_10="3"),
        action("601166", "2024-08-01", Kind.CORPORATE_ACTION_KIND_RIGHTS, shares_per_10="3",
               rights_price="15.00"),
    ]
    a_year = (clock.now() + timedelta(days=400)).date().isoformat()
    bad = [
        action("600690", "2024-06-03", Kind.CORPORATE_ACTION_KIND_UNSPECIFIED),
        action("600690", "2024-06-03", Kind.CORPORATE_ACTION_KIND_BONUS, shares_per_10="10",
               split_ratio="2"),
        action("600690", "2024-06-03", Kind.CORPORATE_ACTION_KIND_RIGHTS, shares_per_10="3"),
        action("600690", "1990-11-30", Kind.CORPORATE_ACTION_KIND_SPLIT, split_ratio="2"),
        action("600690", a_year, Kind.CORPORATE_ACTION_KIND_SPLIT, split_ratio="2"),
        action("bad ticker", "2024-06-03", Kind.CORPORATE_ACTION_KIND_SPLIT, split_ratio="-2"),
    ]
    result = await send(stub, good + bad)
    assert (result.accepted, result.rejected) == (5, 6)
    assert {(r.index, r.field) for r in result.rejections} == {
        (5, "corporate_action.kind"), (6, "corporate_action.split_ratio"),
        (7, "corporate_action.rights_price"), (8, "corporate_action.ex_date"),
        (9, "corporate_action.ex_date"), (10, "corporate_action.ticker"),
        (10, "corporate_action.split_ratio")}
    again = await send(stub, good)
    assert (again.accepted, again.duplicate) == (0, 5)
    fixed = await send(stub, [action("000001", "2024-07-01", Kind.CORPORATE_ACTION_KIND_SPLIT,
                                     split_ratio="1.5")])
    assert fixed.accepted == 1

    # by client: only the tickers the client traded
    await send(stub, [trade("X1", c.id, BUY, 100, "20", at(1715306400), ticker="600690"),
                      trade("X2", c.id, BUY, 100, "20", at(1715306400), ticker="600036")])
    pages, token = [], ""
    while True:
        page = await stub.ListCorporateActions(ca_pb2.ListCorporateActionsRequest(
            client_id=c.id, page_size=1, page_token=token), metadata=ADMIN)
        pages.append([(a.ticker, a.kind) for a in page.corporate_actions])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[("600036", Kind.CORPORATE_ACTION_KIND_BONUS)],
                     [("600036", Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND)],
                     [("600690", Kind.CORPORATE_ACTION_KIND_BONUS)]]
    named = await stub.ListCorporateActions(ca_pb2.ListCorporateActionsRequest(
        tickers=["000001", "601166"], last_ex_date="2024-07-31"), metadata=ADMIN)
    assert [(a.ticker, a.split_ratio) for a in named.corporate_actions] == [("000001", "1.5")]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListCorporateActions(ca_pb2.ListCorporateActionsRequest(
            last_ex_date="2024-02-30"), metadata=ADMIN)
    assert bad_fields(err.value) == {"client_id", "last_ex_date"}
    broker = await make_staff(stub, "broker")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListCorporateActions(ca_pb2.ListCorporateActionsRequest(client_id=c.id),
                                        metadata=auth(broker.id, "broker"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_stream_columns_are_exact(
        frozen: tuple[DirectoryServiceAsyncStub, FakeClock]) -> None:
    """Prices and fees arrive as int64 units of 1e-8 yuan and times as microseconds, exactly
    as imported (eight decimal places, large prices, fractions of a second, no fee), with the
    tickers sent once per batch."""
    stub, _ = frozen
    c = await make_client(stub)
    base = datetime(2024, 3, 5, 2, 0, tzinfo=UTC)
    rows = [  # id, ticker, side, quantity, price, fee, time
        ("X1", "600519", BUY, 100, "1688.88", "42.22", base),
        ("X2", "000001", BUY, 3, "0.00000001", "", base + timedelta(microseconds=1)),
        ("X3", "600519", SELL, 50, "12.30", "0.00000009",
         base + timedelta(seconds=1, microseconds=999_999)),
        ("X4", "510300", BUY, 7, "92233720368.54775807", "5", base + timedelta(days=1)),
        ("X5", "000001", SELL, 3, "7", "1.5", base + timedelta(days=2)),
    ]
    result = await send(stub, [api.ImportRecord(trade=holding_pb2.Trade(
        trade_id=tid, client_id=c.id, ticker=ticker, side=side,
        quantity=qty, price=price, fee=fee, trade_time=stamp(when)))
        for tid, ticker, side, qty, price, fee, when in rows])
    assert (result.accepted, result.rejected) == (5, 0), result.rejections
    batches = [b.columns async for b in stub.StreamTrades(
        api.StreamTradesRequest(client_id=c.id), metadata=ADMIN)]
    assert len(batches) == 1
    got = batches[0]
    assert got.client_id == c.id
    assert list(got.trade_ids) == ["X1", "X2", "X3", "X4", "X5"]
    assert list(got.tickers) == ["600519", "000001", "510300"]
    assert list(got.ticker_indexes) == [0, 1, 0, 2, 1]
    assert list(got.sides) == [BUY, BUY, SELL, BUY, SELL]
    assert list(got.quantities) == [100, 3, 50, 7, 3]
    assert list(got.price_units) == [168_888_000_000, 1, 1_230_000_000, 2**63 - 1,
                                     700_000_000]
    assert list(got.fee_units) == [4_222_000_000, 0, 9, 500_000_000, 150_000_000]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert list(got.trade_time_micros) == [
        (when - epoch) // timedelta(microseconds=1) for *_, when in rows]


async def test_prices_must_be_exact_in_stream_units(
        frozen: tuple[DirectoryServiceAsyncStub, FakeClock]) -> None:
    """A ninth decimal place, or a price past int64 units of 1e-8 yuan, is a rejected row
    naming the field; trailing zeros and plain forms the fast check does not take are fine."""
    stub, _ = frozen
    c = await make_client(stub)
    when = at(1709604000)

    def rec(tid: str, price: str, fee: str) -> api.ImportRecord:
        return api.ImportRecord(trade=holding_pb2.Trade(
            trade_id=tid, client_id=c.id, ticker="600519", side=BUY,
            quantity=1, price=price, fee=fee, trade_time=when))

    result = await send(stub, [
        rec("P1", "1.123456789", "0"), rec("P2", "1", "0.000000001"),
        rec("P3", "92233720368.54775808", "0"), rec("P4", "1.100000000", "0012.50"),
        rec("P5", "1E+2", "0.0")])
    assert (result.accepted, result.rejected) == (2, 3)
    assert [(r.index, r.field, r.reason) for r in result.rejections] == [
        (0, "trade.price", "at most 8 decimal places"),
        (1, "trade.fee", "at most 8 decimal places"),
        (2, "trade.price", "at most 92,233,720,368 yuan")]
    batch = [b.columns async for b in stub.StreamTrades(
        api.StreamTradesRequest(client_id=c.id), metadata=ADMIN)][0]
    assert list(batch.price_units) == [110_000_000, 10_000_000_000]
    assert list(batch.fee_units) == [1_250_000_000, 0]

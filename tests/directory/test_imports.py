from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import client_pb2, events_pb2, holding_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from google.protobuf.timestamp_pb2 import Timestamp

from services.directory.server import SPEC
from tests.directory.factories import make_client, make_staff
from tests.harness import (
    ADMIN,
    SERVICE,
    SUPERVISOR,
    Metadata,
    auth,
    bad_fields,
    channel,
    collect_events,
    make_settings,
    running,
)

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

T0 = datetime(2026, 1, 5, 1, 30, tzinfo=UTC)


def ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


def security(ticker: str, risk: int, price: str = "10.5") -> api.ImportTradesRequest:
    return api.ImportTradesRequest(security=holding_pb2.Security(
        ticker=ticker, name=f"{ticker} Co", risk_level=client_pb2.RiskLevel.ValueType(risk), last_price=price))


def trade(trade_id: str, client_id: str, ticker: str, side: int, qty: int, price: str,
          when: datetime) -> api.ImportTradesRequest:
    return api.ImportTradesRequest(trade=holding_pb2.Trade(
        trade_id=trade_id, client_id=client_id, ticker=ticker, side=holding_pb2.Side.ValueType(side), quantity=qty,
        price=price, fee="1.5", trade_time=ts(when)))


def holding(client_id: str, ticker: str, qty: int, cost: str, as_of: str) -> api.ImportTradesRequest:
    return api.ImportTradesRequest(holding=api.HoldingSnapshot(
        client_id=client_id, ticker=ticker, quantity=qty, cost_price=cost, market_price="11",
        as_of=as_of))


async def _import(stub: DirectoryServiceAsyncStub, records: Iterable[api.ImportTradesRequest], metadata: Metadata = ADMIN) -> api.ImportTradesResponse:
    async def gen() -> AsyncIterator[api.ImportTradesRequest]:
        for r in records:
            yield r
    return await stub.ImportTrades(gen(), metadata=metadata)


def batch(client_id: str) -> list[api.ImportTradesRequest]:
    return [
        security("600519", 3),
        security("300750", 5),
        trade("T1", client_id, "600519", holding_pb2.SIDE_BUY, 100, "1500.00", T0),
        trade("T2", client_id, "600519", holding_pb2.SIDE_SELL, 50, "1600", T0 + timedelta(days=3)),
        trade("T3", client_id, "300750", holding_pb2.SIDE_BUY, 200, "180.5", T0 + timedelta(days=1)),
        holding(client_id, "600519", 50, "1500", "2026-01-10"),
        holding(client_id, "300750", 200, "180.5", "2026-01-10"),
    ]


async def test_import_is_idempotent_and_feeds_queries(tmp_path: Path, nats_url: str,
                                                      database_url: str) -> None:
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings) as runner, channel(runner) as ch:
        stub = DirectoryServiceStub(ch)
        broker = await make_staff(stub, "broker")
        vip = await make_client(stub, tier=client_pb2.TIER_KEY, broker_id=broker.id)
        std = await make_client(stub)
        first = await _import(stub, [*batch(vip.id), holding(std.id, "600519", 10, "1400",
                                                              "2026-01-10")])
        assert (first.accepted, first.duplicate, first.rejected) == (8, 0, 0)
        again = await _import(stub, batch(vip.id))
        assert (again.accepted, again.duplicate, again.rejected) == (0, 7, 0)

        holdings = await stub.ListHoldings(api.ListHoldingsRequest(client_id=vip.id),
                                           metadata=auth(broker.id, "broker"))
        assert [(h.ticker, h.quantity, h.risk_level) for h in holdings.holdings] == [
            ("300750", 200, client_pb2.RISK_LEVEL_R5), ("600519", 50, client_pb2.RISK_LEVEL_R3)]

        trades = [t async for b in stub.StreamTrades(api.StreamTradesRequest(client_id=vip.id),
                                                       metadata=ADMIN) for t in b.columns.trade_ids]
        assert trades == ["T1", "T3", "T2"]
        period = [t async for b in stub.StreamTrades(api.StreamTradesRequest(
            client_id=vip.id, start_time=ts(T0 + timedelta(hours=1)),
            end_time=ts(T0 + timedelta(days=2))), metadata=ADMIN) for t in b.columns.trade_ids]
        assert period == ["T3"]

        found = await stub.FindClientsByTickers(api.FindClientsByTickersRequest(
            tickers=["600519", "000001"]), metadata=SERVICE)
        assert {(c.client_id, tuple(c.tickers)) for c in found.clients} == {
            (vip.id, ("600519",)), (std.id, ("600519",))}
        only_key = await stub.FindClientsByTickers(api.FindClientsByTickersRequest(
            tickers=["600519", "300750"], tier=client_pb2.TIER_KEY), metadata=SERVICE)
        assert [(c.client_id, list(c.tickers), c.broker_id) for c in only_key.clients] == [
            (vip.id, ["300750", "600519"], broker.id)]

        securities = await stub.ListSecurities(api.ListSecuritiesRequest(), metadata=SUPERVISOR)
        assert [s.ticker for s in securities.securities] == ["300750", "600519"]

    events = await collect_events(nats_url, "branch.directory.holdings.updated", count=100_000,
                                  timeout=3)
    payloads = [events_pb2.HoldingsUpdated.FromString(m.data) for m in events]
    assert any(set(p.client_ids) == {vip.id, std.id} for p in payloads)


async def test_rejected_rows_name_their_reasons(stub: DirectoryServiceAsyncStub) -> None:
    client = await make_client(stub)
    records = [
        trade("", client.id, "600519", holding_pb2.SIDE_BUY, 1, "1", T0),
        trade("R2", "ghost", "600519", holding_pb2.SIDE_BUY, 1, "1", T0),
        trade("R3", client.id, "bad ticker", 0, 0, "-1", T0),
        api.ImportTradesRequest(trade=holding_pb2.Trade(trade_id="R4", client_id=client.id,
                                                        ticker="600519", side=holding_pb2.Side.ValueType(1), quantity=1,
                                                        price="1")),
        api.ImportTradesRequest(),
        holding(client.id, "600519", -5, "x", "2026-99-01"),
        api.ImportTradesRequest(security=holding_pb2.Security(ticker="600519", risk_level=client_pb2.RiskLevel.ValueType(9))),
        trade("OK1", client.id, "600519", holding_pb2.SIDE_BUY, 1, "1", T0),
    ]
    result = await _import(stub, records)
    assert (result.accepted, result.duplicate, result.rejected) == (1, 0, 7)
    by_row: dict[int, set[str]] = {}
    for r in result.rejections:
        by_row.setdefault(r.index, set()).add(r.field)
    assert by_row == {
        0: {"trade.trade_id"},
        1: {"trade.client_id"},
        2: {"trade.ticker", "trade.side", "trade.quantity", "trade.price"},
        3: {"trade.trade_time"},
        4: {"record"},
        5: {"holding.quantity", "holding.cost_price", "holding.as_of"},
        6: {"security.risk_level"},
    }
    assert all(r.reason for r in result.rejections)


async def test_older_snapshot_never_overwrites_newer(stub: DirectoryServiceAsyncStub) -> None:
    client = await make_client(stub)
    await _import(stub, [holding(client.id, "000001", 300, "12", "2026-02-01")])
    stale = await _import(stub, [holding(client.id, "000001", 100, "11", "2026-01-01")])
    assert (stale.accepted, stale.duplicate) == (0, 1)
    sold = await _import(stub, [holding(client.id, "000001", 0, "12", "2026-02-02")])
    assert sold.accepted == 1
    held = await stub.ListHoldings(api.ListHoldingsRequest(client_id=client.id), metadata=ADMIN)
    assert list(held.holdings) == []
    found = await stub.FindClientsByTickers(api.FindClientsByTickersRequest(tickers=["000001"]),
                                            metadata=SERVICE)
    assert list(found.clients) == []


async def test_import_and_index_need_the_right_role(stub: DirectoryServiceAsyncStub) -> None:
    for role in ("supervisor", "broker"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _import(stub, [security("600000", 2)], metadata=auth("u", role))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.FindClientsByTickers(api.FindClientsByTickersRequest(tickers=["600000"]),
                                        metadata=auth("b", "broker"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.FindClientsByTickers(api.FindClientsByTickersRequest(), metadata=SERVICE)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListSecurities(api.ListSecuritiesRequest(), metadata=ADMIN)
    assert "600000" not in {s.ticker for s in listed.securities}


async def test_large_import_in_batches(stub: DirectoryServiceAsyncStub) -> None:
    client = await make_client(stub)
    records = [trade(f"B{i}", client.id, "601318", 1 + i % 2, 100, "45.2",
                     T0 + timedelta(minutes=i)) for i in range(2500)]
    first = await _import(stub, records)
    assert first.accepted == 2500
    # half re-sent, half new: only the new ones count
    second = await _import(stub, records[1250:] + [
        trade(f"C{i}", client.id, "601318", 1, 100, "45.2", T0) for i in range(10)])
    assert (second.accepted, second.duplicate) == (10, 1250)
    streamed = [t async for b in stub.StreamTrades(api.StreamTradesRequest(client_id=client.id),
                                                     metadata=ADMIN) for t in b.columns.trade_ids]
    assert len(streamed) == 2510


async def test_streaming_rpc_checks_token_role_and_scope(stub: DirectoryServiceAsyncStub) -> None:
    b1 = await make_staff(stub, "broker")
    theirs = await make_client(stub)
    await _import(stub, [trade("S1", theirs.id, "600519", holding_pb2.SIDE_BUY, 1, "1", T0)])
    cases = [([], grpc.StatusCode.UNAUTHENTICATED),
             (auth("a1", "analyst"), grpc.StatusCode.PERMISSION_DENIED),
             (auth(b1.id, "broker"), grpc.StatusCode.PERMISSION_DENIED)]
    for metadata, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            [t async for b in stub.StreamTrades(api.StreamTradesRequest(client_id=theirs.id),
                                                 metadata=metadata) for t in b.columns.trade_ids]
        assert err.value.code() == code
    with pytest.raises(grpc.aio.AioRpcError) as err:
        [t async for b in stub.StreamTrades(api.StreamTradesRequest(
            client_id=theirs.id, start_time=ts(T0), end_time=ts(T0)), metadata=ADMIN) for t in b.columns.trade_ids]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_batched_records_are_numbered_in_stream_order(stub: DirectoryServiceAsyncStub) -> None:
    client = await make_client(stub)

    def rec(r: api.ImportTradesRequest) -> api.ImportRecord:
        return api.ImportRecord.FromString(r.SerializeToString())

    async def gen() -> AsyncIterator[api.ImportTradesRequest]:
        yield trade("M1", client.id, "600519", holding_pb2.SIDE_BUY, 100, "10", T0)  # index 0
        yield api.ImportTradesRequest(batch=[  # indexes 1..3
            rec(trade("M2", client.id, "600519", holding_pb2.SIDE_BUY, 100, "10", T0)),
            rec(trade("M3", "ghost", "600519", holding_pb2.SIDE_BUY, 100, "10", T0)),
            rec(trade("M1", client.id, "600519", holding_pb2.SIDE_BUY, 100, "10", T0)),
        ])
        yield trade("M4", client.id, "600519", holding_pb2.SIDE_SELL, 0, "10", T0)  # index 4

    result = await stub.ImportTrades(gen(), metadata=ADMIN)
    assert (result.accepted, result.duplicate, result.rejected) == (2, 1, 2)
    assert sorted((r.index, r.field) for r in result.rejections) == [
        (2, "trade.client_id"), (4, "trade.quantity")]


async def test_unstorable_values_are_rejected_rows_not_errors(stub: DirectoryServiceAsyncStub) -> None:
    client = await make_client(stub)
    result = await _import(stub, [
        trade("N\x00UL", client.id, "600519", holding_pb2.SIDE_BUY, 1, "1", T0),
        trade("L" * 65, client.id, "600519", holding_pb2.SIDE_BUY, 1, "1", T0),
        trade("OK2", client.id, "600519", holding_pb2.SIDE_BUY, 1, "1", T0),
    ])
    assert (result.accepted, result.rejected) == (1, 2)
    assert {(r.index, r.field) for r in result.rejections} == {
        (0, "trade.trade_id"), (1, "trade.trade_id")}


async def test_unstorable_request_values_are_invalid_argument(stub: DirectoryServiceAsyncStub) -> None:
    for bad in (api.GetClientRequest(id="x\x00"), api.GetClientRequest(id="x" * 101)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetClient(bad, metadata=ADMIN)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(err.value) == {"id"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateClient(api.UpdateClientRequest(client=client_pb2.Client(
            id="c", display_name="bad\x00name")), metadata=ADMIN)
    assert bad_fields(err.value) == {"client.display_name"}

"""Report figures against a hand-computed trade history.

Client C3. AAA (R2), BBB (R4). Period 2026-02-01..2026-02-28 (Asia/Shanghai).
  t1 2026-01-10 BUY  AAA 100 @10.00 fee 1.00   before the period: a lot, not counted
  t2 2026-02-02 BUY  AAA 100 @12.00 fee 1.00
  t3 2026-02-05 SELL AAA 150 @13.00 fee 1.50   cost 100*10.01 + 50*12.01 = 1601.50,
                                               proceeds 1950 - 1.50 = 1948.50 -> +347.00
                                               held 100*26 d + 50*3 d = 2750 qty-days
  t4 2026-02-10 BUY  BBB 200 @5.00  fee 1.00
  t5 2026-02-20 SELL BBB 200 @4.50  fee 1.00   899.00 - 1001.00 = -102.00, 200*10 d
  t6 2026-02-25 SELL AAA  50 @11.00 fee 0.50   549.50 - 600.50 = -51.00, 50*23 d
  t7 2026-03-01 BUY  AAA  10 @11.00            after the period: ignored
Trades 5 (2 buys, 3 sells), turnover 1200+1950+1000+900+550 = 5600.00, fees 5.00,
realised 194.00, win rate 1/3, holding 5900/400 = 14.75 days (swing).
Holdings AAA 100 @12 (1200), BBB 300 @6 (1800): value 3000, largest BBB 0.6,
turnover ratio 5600/3000 = 1.8667; BBB R4 > C3 warns.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from branch.directory.v1 import client_pb2, holding_pb2
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import report_pb2

from services.common.protos import ts
from services.common.units import fits_units, trades_of, units
from services.directory.trade_stream import trade_columns
from services.remote.analysis import Analyzer
from tests.harness import ADMIN, SUPERVISOR, auth, bad_fields, collect_events
from tests.remote.conftest import Env

TRADES = [
    ("t1", "AAA", 1, 100, "10.00", "1.00", datetime(2026, 1, 10, 2, tzinfo=UTC)),
    ("t2", "AAA", 1, 100, "12.00", "1.00", datetime(2026, 2, 2, 2, tzinfo=UTC)),
    ("t3", "AAA", 2, 150, "13.00", "1.50", datetime(2026, 2, 5, 2, tzinfo=UTC)),
    ("t4", "BBB", 1, 200, "5.00", "1.00", datetime(2026, 2, 10, 2, tzinfo=UTC)),
    ("t5", "BBB", 2, 200, "4.50", "1.00", datetime(2026, 2, 20, 2, tzinfo=UTC)),
    ("t6", "AAA", 2, 50, "11.00", "0.50", datetime(2026, 2, 25, 2, tzinfo=UTC)),
    ("t7", "AAA", 1, 10, "11.00", "0", datetime(2026, 3, 1, 4, tzinfo=UTC)),
]


async def load_history(env: Env, client_id: str) -> None:
    async def records() -> AsyncIterator[dapi.ImportTradesRequest]:
        yield dapi.ImportTradesRequest(security=holding_pb2.Security(
            ticker="AAA", name="Alpha", risk_level=client_pb2.RiskLevel.ValueType(2), last_price="12"))
        yield dapi.ImportTradesRequest(security=holding_pb2.Security(
            ticker="BBB", name="Beta", risk_level=client_pb2.RiskLevel.ValueType(4), last_price="6"))
        for tid, ticker, side, qty, price, fee, when in TRADES:
            yield dapi.ImportTradesRequest(trade=holding_pb2.Trade(
                trade_id=f"{client_id}-{tid}", client_id=client_id, ticker=ticker,
                side=holding_pb2.Side.ValueType(side),
                quantity=qty, price=price, fee=fee, trade_time=ts(when)))
        for ticker, qty, price in (("AAA", 100, "12"), ("BBB", 300, "6")):
            yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
                client_id=client_id, ticker=ticker, quantity=qty, cost_price="10",
                market_price=price, as_of="2026-02-27"))

    result = await env.dir.ImportTrades(records(), metadata=ADMIN)
    assert result.rejected == 0, result.rejections


def check_figures(f: report_pb2.ReportFigures) -> None:
    assert (f.trades, f.buys, f.sells) == (5, 2, 3)
    assert f.turnover == "5600.00" and f.fees == "5.00"
    assert f.realised_pnl == "194.00"
    assert f.win_rate == pytest.approx(1 / 3, abs=1e-4)
    assert f.average_holding_days == pytest.approx(14.75)
    assert f.style == report_pb2.TRADING_STYLE_SWING
    assert f.portfolio_value == "3000.00"
    assert f.largest_position_ticker == "BBB" and f.concentration == pytest.approx(0.6)
    assert f.turnover_ratio == pytest.approx(1.8667, abs=1e-4)
    by = {t.ticker: t for t in f.tickers}
    assert by["AAA"].realised_pnl == "296.00" and by["AAA"].trades == 3
    assert by["AAA"].turnover == "3700.00"
    assert (by["AAA"].winning_sells, by["AAA"].closing_sells) == (1, 2)
    assert by["AAA"].average_holding_days == pytest.approx(19.5)
    assert by["BBB"].realised_pnl == "-102.00" and by["BBB"].average_holding_days == 10.0
    assert [w.ticker for w in f.warnings] == ["BBB"]


def test_analysis_pure() -> None:
    start = int(datetime(2026, 1, 31, 16, tzinfo=UTC).timestamp())
    end = int(datetime(2026, 2, 28, 16, tzinfo=UTC).timestamp())
    a = Analyzer(start, end)
    for _tid, ticker, side, qty, price, fee, when in TRADES:
        a.add(ticker, side, qty, price, fee, int(when.timestamp()))
    holdings = [holding_pb2.Holding(ticker="AAA", quantity=100, market_price="12", risk_level=client_pb2.RiskLevel.ValueType(2)),
                holding_pb2.Holding(ticker="BBB", quantity=300, market_price="6", risk_level=client_pb2.RiskLevel.ValueType(4))]
    secs = {"AAA": holding_pb2.Security(ticker="AAA", risk_level=client_pb2.RiskLevel.ValueType(2)),
            "BBB": holding_pb2.Security(ticker="BBB", risk_level=client_pb2.RiskLevel.ValueType(4))}
    check_figures(a.figures(holdings, secs, 3, False))


def test_unmatched_sell_and_style_extremes() -> None:
    a = Analyzer(0, 10**10)
    a.add("X", 2, 10, "5", "0", 100)  # a sell with no earlier buy
    a.add("Y", 1, 10, "5", "0", 0)
    a.add("Y", 2, 10, "6", "0", 86400)  # one day: short-term
    f = a.figures([], {}, 3, True)
    assert {t.ticker: t.unmatched_quantity for t in f.tickers} == {"X": 10, "Y": 0}
    assert f.style == report_pb2.TRADING_STYLE_SHORT_TERM
    assert f.realised_pnl == "10.00" and f.win_rate == 1.0
    assert f.warnings[-1].message.startswith("the client's risk assessment")
    empty = Analyzer(0, 10).figures([], {}, 3, False)
    assert empty.style == report_pb2.TRADING_STYLE_UNDETERMINED and empty.trades == 0


async def test_create_deliver_report(env: Env, nats_url: str) -> None:
    client = await env.client(tolerance=3)
    await load_history(env, client.id)
    agent, md = await env.agent()
    req = api.CreateReportRequest(client_id=client.id, period_start="2026-02-01",
                                  period_end="2026-02-28", request_id="rep-1")
    made = await env.stub.CreateReport(req, metadata=md)
    check_figures(made.figures)
    assert made.state == report_pb2.REPORT_STATE_READY and not made.markdown
    assert (await env.stub.CreateReport(req, metadata=md)).id == made.id
    got = await env.stub.GetReport(api.GetReportRequest(id=made.id), metadata=SUPERVISOR)
    assert "| Realised P&L (FIFO, after fees) | 194.00 |" in got.markdown
    assert "```text" in got.markdown
    assert "<svg" in got.html and "Realised P&amp;L by ticker" in got.html
    assert "BBB (R4)" in got.markdown
    delivered = await env.stub.DeliverReport(api.DeliverReportRequest(
        id=made.id, channel=report_pb2.DELIVERY_CHANNEL_EMAIL, delivered_to="c@example.com"),
        metadata=md)
    assert delivered.state == report_pb2.REPORT_STATE_DELIVERED
    assert delivered.delivered_by == agent and delivered.deliver_time.seconds
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.DeliverReport(api.DeliverReportRequest(
            id=made.id, channel=report_pb2.DELIVERY_CHANNEL_EMAIL, delivered_to="x"),
            metadata=md)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = await env.stub.ListReports(api.ListReportsRequest(client_id=client.id),
                                        metadata=SUPERVISOR)
    assert [r.id for r in listed.reports] == [made.id]
    events = await collect_events(nats_url, "branch.remote.report.delivered", count=100,
                                  timeout=2)
    assert any(e.headers["ce-subject"] == made.id for e in events)


async def test_report_bad_fields_roles_and_missing(env: Env) -> None:
    _, md = await env.agent()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateReport(api.CreateReportRequest(
            period_start="2026-02-30", period_end="2027-01-01"), metadata=md)
    assert bad_fields(err.value) == {"client_id", "period_start", "period_end"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateReport(api.CreateReportRequest(
            client_id="x", period_start="2026-02-10", period_end="2026-02-01"), metadata=md)
    assert bad_fields(err.value) == {"period_end"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateReport(api.CreateReportRequest(
            client_id="missing", period_start="2026-02-01", period_end="2026-02-02"),
            metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateReport(api.CreateReportRequest(
            client_id="x", period_start="2026-02-01", period_end="2026-02-02"),
            metadata=auth("a1", "analyst"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.DeliverReport(api.DeliverReportRequest(id="r"), metadata=md)
    assert bad_fields(err.value) == {"channel", "delivered_to"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetReport(api.GetReportRequest(id="nope"), metadata=md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_directory_unreachable_is_unavailable(tmp_path: Path, nats_url: str) -> None:
    from services.common.nats_link import free_port
    from services.remote.server import SPEC as REMOTE
    from tests.harness import channel, make_settings, running

    settings = make_settings(tmp_path, nats_url, directory_addr=f"127.0.0.1:{free_port()}")
    async with running(REMOTE, settings) as remote, channel(remote) as ch:
        from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await RemoteServiceStub(ch).CreateReport(api.CreateReportRequest(
                client_id="c", period_start="2026-01-01", period_end="2026-01-31"),
                metadata=auth("a", "service_agent"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_monthly_turnover_is_cut_at_branch_local_months() -> None:
    """07:00 Beijing on 1 March is 23:00 UTC on 28 February: it is March's turnover."""
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    early_march = int(datetime(2026, 3, 1, 7, tzinfo=shanghai).timestamp())
    late_feb = int(datetime(2026, 2, 28, 23, 59, tzinfo=shanghai).timestamp())
    a = Analyzer(0, 2**40, tz=shanghai)
    a.add("AAA", 1, 100, "10", "0", late_feb)
    a.add("AAA", 1, 100, "11", "0", early_march)
    assert a.monthly == {"2026-02": Decimal("1000"), "2026-03": Decimal("1100")}
    utc = Analyzer(0, 2**40)
    utc.add("AAA", 1, 100, "11", "0", early_march)
    assert list(utc.monthly) == ["2026-02"]


def columns_of(rows: Sequence[tuple[str, str, int, int, str, str, int]],
               size: int) -> list[holding_pb2.TradeColumns]:
    """(id, ticker, side, quantity, price, fee, epoch micros) as the directory streams them."""
    return [trade_columns("c", [(tid, ticker, side, qty, units(price), units(fee), us)
                                for tid, ticker, side, qty, price, fee, us in rows[i:i + size]])
            for i in range(0, len(rows), size)]


def test_columns_fold_to_the_hand_computed_figures() -> None:
    start = int(datetime(2026, 1, 31, 16, tzinfo=UTC).timestamp())
    end = int(datetime(2026, 2, 28, 16, tzinfo=UTC).timestamp())
    a = Analyzer(start, end)
    for batch in columns_of([(tid, ticker, side, qty, price, fee,
                              int(when.timestamp()) * 1_000_000)
                             for tid, ticker, side, qty, price, fee, when in TRADES], 4):
        a.add_columns(batch)
    R2, R4 = client_pb2.RiskLevel.ValueType(2), client_pb2.RiskLevel.ValueType(4)
    holdings = [holding_pb2.Holding(ticker="AAA", quantity=100, market_price="12", risk_level=R2),
                holding_pb2.Holding(ticker="BBB", quantity=300, market_price="6", risk_level=R4)]
    secs = {"AAA": holding_pb2.Security(ticker="AAA", risk_level=R2),
            "BBB": holding_pb2.Security(ticker="BBB", risk_level=R4)}
    check_figures(a.figures(holdings, secs, 3, False))


def test_columns_fold_as_trades_one_by_one_with_corporate_actions() -> None:
    """5,000 generated trades over 4 tickers with every kind of corporate action: folding
    batches of columns gives exactly the figures of folding each trade from its decimal
    strings (the path the hand-computed cases check)."""
    kind = ca_pb2.CorporateActionKind
    day = 86_400
    t0 = int(datetime(2024, 1, 2, 1, 30, tzinfo=UTC).timestamp())
    actions = {
        "600000": [(t0 + 40 * day, ca_pb2.CorporateAction(
            kind=kind.CORPORATE_ACTION_KIND_BONUS, shares_per_10="3"))],
        "600001": [(t0 + 90 * day, ca_pb2.CorporateAction(
            kind=kind.CORPORATE_ACTION_KIND_SPLIT, split_ratio="0.1"))],
        "600002": [(t0 + 60 * day, ca_pb2.CorporateAction(
            kind=kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND, cash_per_10="2.35")),
            (t0 + 60 * day, ca_pb2.CorporateAction(
                kind=kind.CORPORATE_ACTION_KIND_BONUS, shares_per_10="5"))],
        "000001": [(t0 + 120 * day, ca_pb2.CorporateAction(
            kind=kind.CORPORATE_ACTION_KIND_RIGHTS, shares_per_10="3", rights_price="4.321"))],
    }
    rng = random.Random(17)
    held = dict.fromkeys(actions, 0)
    rows = []
    for i in range(5000):
        ticker = rng.choice(list(actions))
        price = f"{rng.randint(100, 99_999) / 1000:.3f}"
        if held[ticker] >= 100 and rng.random() < 0.45:
            side, qty = holding_pb2.SIDE_SELL, rng.randint(1, held[ticker] // 100) * 100
            held[ticker] -= qty
        else:
            side, qty = holding_pb2.SIDE_BUY, rng.randint(1, 30) * 100
            held[ticker] += qty
        fee = rng.choice(["0", "5", f"{rng.randint(1, 99_999) / 100:.2f}", "0.00000001"])
        # several trades in one second now and then; some fractions of a second
        micros = (t0 + i * 2_000 + (i % 7 == 0)) * 1_000_000 + rng.choice([0, 999_999, 1])
        rows.append((f"g{i}", ticker, side, qty, price, fee, micros))
    # a sell with no earlier buy, in the period
    rows.append(("u1", "600003", holding_pb2.SIDE_SELL, 100, "3.3", "0", rows[-1][6] + 1))
    start, end = t0 + 30 * day, t0 + 100 * day
    one_by_one = Analyzer(start, end, actions)
    for _tid, ticker, side, qty, price, fee, us in rows:
        one_by_one.add(ticker, side, qty, price, fee, us // 1_000_000)
    columns = Analyzer(start, end, actions)
    for batch in columns_of(rows, 700):
        columns.add_columns(batch)
    holdings = [holding_pb2.Holding(ticker=t, quantity=q, market_price="10",
                                    risk_level=client_pb2.RISK_LEVEL_R3)
                for t, q in sorted(held.items()) if q]
    expected = one_by_one.figures(holdings, {}, 3, False)
    assert columns.figures(holdings, {}, 3, False) == expected
    assert columns.monthly == one_by_one.monthly
    assert expected.trades > 1000 and expected.realised_pnl != "0.00"
    assert {t.ticker for t in expected.tickers} >= {"600000", "600001", "600002", "000001"}


def test_money_units_are_exact() -> None:
    assert units("12.34") == 1_234_000_000 and units("0.00000001") == 1
    assert units("92233720368.54775807") == 2**63 - 1 and units("5") == 500_000_000
    assert units("1.123456789") == 112_345_678  # truncated: the import refuses these
    assert fits_units(Decimal("1.100000000")) is None
    assert fits_units(Decimal("1.000000001")) == "at most 8 decimal places"
    assert fits_units(Decimal("92233720368.54775808")) == "at most 92,233,720,368 yuan"


def test_columns_back_to_trade_messages() -> None:
    """trades_of (the console's recent trades) gives each trade back with decimal strings."""
    when = datetime(2026, 2, 2, 2, 0, 0, 250_000, tzinfo=UTC)
    rows = [("t1", "AAA", 1, 100, "10.50", "0", int(when.timestamp() * 1_000_000)),
            ("t2", "BBB", 2, 5, "0.00000001", "12", int(when.timestamp() * 1_000_000) + 1)]
    back = trades_of(columns_of(rows, 10)[0])
    assert [(t.trade_id, t.ticker, t.side, t.quantity, t.price, t.fee) for t in back] == [
        ("t1", "AAA", 1, 100, "10.5", "0"), ("t2", "BBB", 2, 5, "0.00000001", "12")]
    assert back[0].trade_time.ToDatetime(UTC) == when and back[1].trade_time.nanos == 250_001_000

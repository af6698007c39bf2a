"""Trading-record analysis: pure figures from a stream of trades and the current holdings.

Trades arrive in time order and are folded one at a time, so memory grows with open lots
and tickers, not with the number of trades. Realised P&L is FIFO per ticker, after fees: a
buy's fee is part of its lots' cost, a sell's fee reduces its proceeds. Sells before the
period still consume lots (so the period's lots are right) but only sells inside the
period count toward P&L, win rate and holding periods.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from branch.directory.v1 import holding_pb2
from branch.remote.v1 import report_pb2

ZERO = Decimal(0)
CENT = Decimal("0.01")
SHORT_TERM_DAYS = 5.0
SWING_DAYS = 60.0
DAY = 86400.0


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))


@dataclass
class TickerState:
    lots: deque[list] = field(default_factory=deque)  # [quantity, unit_cost, buy_epoch]
    trades: int = 0
    turnover: Decimal = ZERO
    realised: Decimal = ZERO
    winning: int = 0
    closing: int = 0
    held_qty_days: float = 0.0
    held_qty: int = 0
    unmatched: int = 0


class Analyzer:
    """Fold trades with add(); read the figures with figures()."""

    def __init__(self, start_epoch: int, end_epoch: int) -> None:
        # period is [start, end)
        self.start = start_epoch
        self.end = end_epoch
        self.tickers: dict[str, TickerState] = {}
        self.trades = self.buys = self.sells = 0
        self.turnover = ZERO
        self.fees = ZERO
        self.monthly: dict[str, Decimal] = {}
        self.bought_in_period: set[str] = set()

    def add_trade(self, trade: holding_pb2.Trade) -> None:
        self.add(trade.ticker, trade.side, trade.quantity, trade.price, trade.fee or "0",
                 trade.trade_time.seconds)

    def add(self, ticker: str, side: int, quantity: int, price: str, fee: str,
            epoch: int) -> None:
        if epoch >= self.end:
            return
        state = self.tickers.get(ticker)
        if state is None:
            state = self.tickers[ticker] = TickerState()
        px = Decimal(price)
        fee_d = Decimal(fee)
        amount = px * quantity
        in_period = epoch >= self.start
        if in_period:
            self.trades += 1
            state.trades += 1
            state.turnover += amount
            self.turnover += amount
            self.fees += fee_d
            month = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")
            self.monthly[month] = self.monthly.get(month, ZERO) + amount
        if side == holding_pb2.SIDE_BUY:
            if in_period:
                self.buys += 1
                self.bought_in_period.add(ticker)
            state.lots.append([quantity, (amount + fee_d) / quantity, epoch])
            return
        if in_period:
            self.sells += 1
        remaining = quantity
        cost = ZERO
        qty_days = 0.0
        lots = state.lots
        while remaining and lots:
            lot = lots[0]
            take = lot[0] if lot[0] <= remaining else remaining
            cost += lot[1] * take
            qty_days += take * (epoch - lot[2]) / DAY
            remaining -= take
            lot[0] -= take
            if lot[0] == 0:
                lots.popleft()
        matched = quantity - remaining
        if not in_period:
            return
        state.unmatched += remaining
        if matched == 0:
            return
        proceeds = px * matched - fee_d * matched / quantity
        pnl = proceeds - cost
        state.realised += pnl
        state.closing += 1
        if pnl > 0:
            state.winning += 1
        state.held_qty_days += qty_days
        state.held_qty += matched

    def figures(
        self,
        holdings: list[holding_pb2.Holding],
        securities: dict[str, holding_pb2.Security],
        tolerance: int,
        assessment_expired: bool,
    ) -> report_pb2.ReportFigures:
        out = report_pb2.ReportFigures(
            trades=self.trades, buys=self.buys, sells=self.sells,
            turnover=money(self.turnover), fees=money(self.fees),
        )
        realised = ZERO
        winning = closing = 0
        qty_days = 0.0
        qty = 0
        for ticker in sorted(self.tickers):
            s = self.tickers[ticker]
            if not (s.trades or s.closing):
                continue
            realised += s.realised
            winning += s.winning
            closing += s.closing
            qty_days += s.held_qty_days
            qty += s.held_qty
            sec = securities.get(ticker)
            out.tickers.append(report_pb2.TickerFigures(
                ticker=ticker, name=sec.name if sec else "", trades=s.trades,
                turnover=money(s.turnover), realised_pnl=money(s.realised),
                winning_sells=s.winning, closing_sells=s.closing,
                average_holding_days=round(s.held_qty_days / s.held_qty, 2) if s.held_qty else 0.0,
                unmatched_quantity=s.unmatched,
            ))
        out.realised_pnl = money(realised)
        out.win_rate = round(winning / closing, 4) if closing else 0.0
        avg = qty_days / qty if qty else 0.0
        out.average_holding_days = round(avg, 2)
        if not qty:
            out.style = report_pb2.TRADING_STYLE_UNDETERMINED
        elif avg <= SHORT_TERM_DAYS:
            out.style = report_pb2.TRADING_STYLE_SHORT_TERM
        elif avg <= SWING_DAYS:
            out.style = report_pb2.TRADING_STYLE_SWING
        else:
            out.style = report_pb2.TRADING_STYLE_LONG_TERM
        values: dict[str, Decimal] = {}
        for h in holdings:
            sec = securities.get(h.ticker)
            price = h.market_price or (sec.last_price if sec else "") or h.cost_price or "0"
            values[h.ticker] = values.get(h.ticker, ZERO) + Decimal(price) * h.quantity
        total = sum(values.values(), ZERO)
        out.portfolio_value = money(total)
        if total > 0:
            top = max(sorted(values), key=lambda t: values[t])
            out.largest_position_ticker = top
            out.concentration = round(float(values[top] / total), 4)
            out.turnover_ratio = round(float(self.turnover / total), 4)
        risky: dict[str, tuple[int, str]] = {}
        for h in holdings:
            level = h.risk_level or (securities[h.ticker].risk_level if h.ticker in securities
                                     else 0)
            if tolerance and level > tolerance:
                risky[h.ticker] = (level, "held position's risk exceeds the client's tolerance")
        for ticker in sorted(self.bought_in_period):
            sec = securities.get(ticker)
            if sec and tolerance and sec.risk_level > tolerance and ticker not in risky:
                risky[ticker] = (sec.risk_level,
                                 "bought in the period above the client's tolerance")
        for ticker in sorted(risky):
            level, message = risky[ticker]
            out.warnings.append(report_pb2.SuitabilityWarning(
                ticker=ticker, risk_level=level, client_tolerance=tolerance,  # type: ignore[arg-type]
                message=message,
            ))
        if assessment_expired:
            out.warnings.append(report_pb2.SuitabilityWarning(
                client_tolerance=tolerance,  # type: ignore[arg-type]
                message="the client's risk assessment is two years old or more: renew it",
            ))
        return out

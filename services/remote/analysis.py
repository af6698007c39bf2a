"""Trading-record analysis: pure figures from a stream of trades and the current holdings.

Trades arrive in time order and are folded one at a time, so memory grows with open lots
and tickers, not with the number of trades. Realised P&L is FIFO per ticker, after fees: a
buy's fee is part of its lots' cost, a sell's fee reduces its proceeds. Sells before the
period still consume lots (so the period's lots are right) but only sells inside the
period count toward P&L, win rate and holding periods.

Corporate actions adjust the open lots at the first instant of their ex-date (branch time),
before any trade at or after it, the way a brokerage's position cost (摊薄成本) moves:
bonus shares (送转股) and splits multiply each lot's quantity and keep its cost, so cost per
share falls; a cash dividend (派息, before tax) lowers the lots' cost by the cash received,
so it shows in the P&L when the shares are sold rather than as separate income; a rights
issue (配股) is taken up in full, a new lot bought at the rights price on the ex-date.
Quantities are whole shares: the position's new total is rounded down (fractional shares
are paid in cash by the registrar, not modelled). Several actions on one ex-date apply in
the order cash dividend, bonus, split, rights.

A ticker with quantity sold in the period and no earlier buy in the records (an unknown
opening position) is incomplete: no P&L is given for it and the totals leave it out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from fractions import Fraction

from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import holding_pb2
from branch.remote.v1 import report_pb2

from services.common.clock import day_range, local_date, month_of
from services.common.units import units, yuan

Kind = ca_pb2.CorporateActionKind
# one ex-date's actions apply in this order (each on the quantity held before the day)
ACTION_ORDER = {Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND: 0, Kind.CORPORATE_ACTION_KIND_BONUS: 1,
                Kind.CORPORATE_ACTION_KIND_SPLIT: 2, Kind.CORPORATE_ACTION_KIND_RIGHTS: 3}
# (epoch of the ex-date's first instant in branch time, action), per ticker
Actions = Mapping[str, Sequence[tuple[int, ca_pb2.CorporateAction]]]
ZERO = Decimal(0)
CENT = Decimal("0.01")
SHORT_TERM_DAYS = 5.0
SWING_DAYS = 60.0
DAY = 86400.0
# Amounts are integers in units of 1e-8 yuan (services.common.units): exact for prices and
# fees as the trading system sends them (the import refuses finer digits), the units the
# directory streams them in, and several times faster than Decimal over 100,000 trades.
# Splitting a lot's cost floors to 1e-8 and the remainder stays with the lot, so nothing
# drifts.

def money(value: int | Decimal) -> str:
    if isinstance(value, int):
        value = yuan(value)
    return str(value.quantize(CENT))


@dataclass
class TickerState:
    # (quantity, cost in 1e-8 units including the buy fee, buy epoch), oldest first
    lots: deque[tuple[int, int, int]] = field(default_factory=deque)
    trades: int = 0
    turnover: int = 0
    realised: int = 0
    winning: int = 0
    closing: int = 0
    held_qty_days: float = 0.0
    held_qty: int = 0
    unmatched: int = 0
    # corporate actions not yet applied, oldest first
    pending: deque[tuple[int, ca_pb2.CorporateAction]] = field(default_factory=deque)


def apply_action(lots: deque[tuple[int, int, int]], action: ca_pb2.CorporateAction,
                 epoch: int) -> None:
    """Adjust FIFO lots (quantity, cost in 1e-8 yuan, buy epoch) for one corporate action."""
    if not lots:
        return
    if action.kind == Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND:
        per_10 = units(action.cash_per_10)
        for i, (qty, cost, bought) in enumerate(lots):
            lots[i] = (qty, cost - qty * per_10 // 10, bought)
        return
    if action.kind == Kind.CORPORATE_ACTION_KIND_SPLIT:
        factor = Fraction(action.split_ratio)
    elif action.kind in (Kind.CORPORATE_ACTION_KIND_BONUS, Kind.CORPORATE_ACTION_KIND_RIGHTS):
        factor = 1 + Fraction(action.shares_per_10) / 10
    else:
        return
    total = sum(qty for qty, _, _ in lots)
    new_total = int(total * factor)  # whole shares: rounded down on the position
    if action.kind == Kind.CORPORATE_ACTION_KIND_RIGHTS:
        added = new_total - total
        if added > 0:
            lots.append((added, added * units(action.rights_price), epoch))
        return
    new = [int(qty * factor) for qty, _, _ in lots]
    new[-1] += new_total - sum(new)
    carried = 0  # the cost of a lot rounded away (a consolidation) moves to the next one
    adjusted: deque[tuple[int, int, int]] = deque()
    for qty, (_, cost, bought) in zip(new, lots, strict=True):
        if qty <= 0:
            carried += cost
            continue
        adjusted.append((qty, cost + carried, bought))
        carried = 0
    if carried and adjusted:
        qty, cost, bought = adjusted[-1]
        adjusted[-1] = (qty, cost + carried, bought)
    lots.clear()
    lots.extend(adjusted)


class Analyzer:
    """Fold trades with add_columns() (a streamed batch) or add(); read the figures with
    figures()."""

    def __init__(self, start_epoch: int, end_epoch: int, actions: Actions | None = None,
                 tz: tzinfo = UTC) -> None:
        """The period is [start, end) in epoch seconds; monthly turnover is cut at the
        months of `tz` (the branch's zone), so 07:00 Beijing on 1 March counts in March."""
        self.tz = tz
        self.start = start_epoch
        self.end = end_epoch
        self.actions: Actions = actions or {}
        self.tickers: dict[str, TickerState] = {}
        self.trades = self.buys = self.sells = 0
        self._turnover = 0
        self._fees = 0
        self._monthly: dict[str, int] = {}
        self._month = ""
        self._month_end = -1
        self._month_start = 0
        self.bought_in_period: set[str] = set()

    @property
    def turnover(self) -> Decimal:
        return yuan(self._turnover)

    @property
    def monthly(self) -> dict[str, Decimal]:
        return {k: yuan(v) for k, v in self._monthly.items()}

    def add_columns(self, columns: holding_pb2.TradeColumns) -> None:
        """Fold one streamed batch (TradeColumns: prices and fees in 1e-8 yuan, times in
        microseconds), trade by trade in order."""
        tickers = list(columns.tickers)
        add = self.add_units
        for ticker, side, quantity, price, fee, micros in zip(
                columns.ticker_indexes, columns.sides, columns.quantities,
                columns.price_units, columns.fee_units, columns.trade_time_micros,
                strict=True):
            add(tickers[ticker], side, quantity, price, fee, micros // 1_000_000)

    def _month_of(self, epoch: int) -> str:
        if not self._month_start <= epoch < self._month_end:
            day = local_date(datetime.fromtimestamp(epoch, UTC), self.tz)
            first, last = month_of(day)
            self._month = first.strftime("%Y-%m")
            start, end = day_range(first, last, self.tz)
            self._month_start = int(start.timestamp())
            self._month_end = int(end.timestamp())
        return self._month

    def add(self, ticker: str, side: int, quantity: int, price: str, fee: str,
            epoch: int) -> None:
        """One trade; price and fee as decimal strings (yuan), epoch in seconds."""
        self.add_units(ticker, side, quantity, units(price), units(fee) if fee != "0" else 0,
                       epoch)

    def add_units(self, ticker: str, side: int, quantity: int, price: int, fee_s: int,
                  epoch: int) -> None:
        """One trade; price and fee in units of 1e-8 yuan, epoch in seconds."""
        if epoch >= self.end:
            return
        state = self.tickers.get(ticker)
        if state is None:
            state = self.tickers[ticker] = TickerState(pending=deque(sorted(
                self.actions.get(ticker, ()),
                key=lambda a: (a[0], ACTION_ORDER.get(a[1].kind, 9)))))
        while state.pending and state.pending[0][0] <= epoch:
            at, action = state.pending.popleft()
            apply_action(state.lots, action, at)
        amount = price * quantity
        in_period = epoch >= self.start
        if in_period:
            self.trades += 1
            state.trades += 1
            state.turnover += amount
            self._turnover += amount
            self._fees += fee_s
            month = self._month_of(epoch)
            self._monthly[month] = self._monthly.get(month, 0) + amount
        if side == holding_pb2.SIDE_BUY:
            if in_period:
                self.buys += 1
                self.bought_in_period.add(ticker)
            state.lots.append((quantity, amount + fee_s, epoch))
            return
        if in_period:
            self.sells += 1
        remaining = quantity
        cost = 0
        qty_days = 0
        lots = state.lots
        while remaining and lots:
            lot_qty, lot_cost, bought = lots[0]
            if lot_qty <= remaining:
                cost += lot_cost
                qty_days += lot_qty * (epoch - bought)
                remaining -= lot_qty
                lots.popleft()
            else:
                part = lot_cost * remaining // lot_qty
                cost += part
                qty_days += remaining * (epoch - bought)
                lots[0] = (lot_qty - remaining, lot_cost - part, bought)
                remaining = 0
        matched = quantity - remaining
        if not in_period:
            return
        state.unmatched += remaining
        if matched == 0:
            return
        proceeds = amount * matched // quantity - fee_s * matched // quantity
        pnl = proceeds - cost
        state.realised += pnl
        state.closing += 1
        if pnl > 0:
            state.winning += 1
        state.held_qty_days += qty_days / DAY
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
            turnover=money(self._turnover), fees=money(self._fees),
        )
        realised = 0
        winning = closing = 0
        qty_days = 0.0
        qty = 0
        for ticker in sorted(self.tickers):
            s = self.tickers[ticker]
            if not (s.trades or s.closing):
                continue
            sec = securities.get(ticker)
            incomplete = s.unmatched > 0
            out.tickers.append(report_pb2.TickerFigures(
                ticker=ticker, name=sec.name if sec else "", trades=s.trades,
                turnover=money(s.turnover), realised_pnl="" if incomplete else money(s.realised),
                winning_sells=s.winning, closing_sells=s.closing,
                average_holding_days=round(s.held_qty_days / s.held_qty, 2) if s.held_qty else 0.0,
                unmatched_quantity=s.unmatched, incomplete=incomplete,
            ))
            if incomplete:
                continue
            realised += s.realised
            winning += s.winning
            closing += s.closing
            qty_days += s.held_qty_days
            qty += s.held_qty
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

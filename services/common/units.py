"""Exact money as integers: units of 1e-8 yuan, and instants as microseconds since the epoch.

The trade stream (TradeColumns in holding.proto) carries prices and fees in these units so
they pack as varints; the report's FIFO analysis computes in them (several times faster than
Decimal, and exact). 12.34 yuan is 1_234_000_000 units.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from branch.directory.v1 import holding_pb2
from google.protobuf.timestamp_pb2 import Timestamp

UNITS_PER_YUAN = 10**8
DECIMALS = 8
# the largest price or fee that fits an int64 column at this scale (92,233,720,368 yuan)
MAX_UNITS = 2**63 - 1
_UNITS_D = Decimal(UNITS_PER_YUAN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def units(text: str) -> int:
    """'12.34' -> 1234000000. Digits past the eighth decimal place are truncated toward zero
    (the import refuses them, so only rows stored before that check have any)."""
    if "e" in text or "E" in text or text.count(".") > 1:
        return int(Decimal(text) * _UNITS_D)
    whole, _, frac = text.partition(".")
    negative = whole.startswith("-")
    value = int(whole or "0") * UNITS_PER_YUAN
    if frac:
        part = int((frac + "00000000")[:DECIMALS])
        value = value - part if negative else value + part
    return value


def yuan(value: int) -> Decimal:
    """1234000000 -> Decimal('12.34')."""
    return Decimal(value) / _UNITS_D


def fits_units(number: Decimal) -> str | None:
    """Why a non-negative decimal has no exact value in units of 1e-8 yuan, or None."""
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMALS and number != number.quantize(
            Decimal(1).scaleb(-DECIMALS)):
        return f"at most {DECIMALS} decimal places"
    if number * _UNITS_D > MAX_UNITS:
        return f"at most {MAX_UNITS // UNITS_PER_YUAN:,} yuan"
    return None


def micros(when: datetime) -> int:
    """An aware datetime as whole microseconds since 1970-01-01T00:00:00Z (exact)."""
    return (when - _EPOCH) // _MICRO


def decimal_text(value: int) -> str:
    """1234000000 -> '12.34' (units of 1e-8 yuan as a normalised decimal string)."""
    return format(yuan(value).normalize(), "f")


def trades_of(columns: holding_pb2.TradeColumns) -> list[holding_pb2.Trade]:
    """A streamed batch of columns as one Trade message per trade (prices and fees as decimal
    strings), for a reader that shows a few trades; a fold should read the columns."""
    tickers = list(columns.tickers)
    return [holding_pb2.Trade(
        trade_id=trade_id, client_id=columns.client_id, ticker=tickers[ticker],
        side=side, quantity=quantity, price=decimal_text(price),
        fee=decimal_text(fee),
        trade_time=Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000))
        for trade_id, ticker, side, quantity, price, fee, us in zip(
            columns.trade_ids, columns.ticker_indexes, columns.sides, columns.quantities,
            columns.price_units, columns.fee_units, columns.trade_time_micros, strict=True)]

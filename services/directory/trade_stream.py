"""StreamTrades' reading side: a client's trades as columns, with money and times converted
to integers by the database itself (TradeColumns in holding.proto).

A 100,000-trade history is the case this is built for. Prices and fees are stored as
normalised decimal strings ('12.3', '5'; services/directory/validation.py) and times as UTC;
the SELECT turns them into units of 1e-8 yuan and microseconds since the epoch, exactly (no
floating point), so no Decimal or datetime is made per row in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from branch.directory.v1 import holding_pb2
from sqlalchemy import BigInteger, Numeric, Select, case, cast, extract, func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import as_utc
from services.common.units import DECIMALS, UNITS_PER_YUAN
from services.directory.models import Trade

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def units_sql(column: Any, sqlite: bool) -> ColumnElement[int]:
    """A decimal-string column as an integer number of 1e-8 yuan (digits past the eighth
    decimal place truncated, as services.common.units.units does)."""
    if not sqlite:
        return cast(func.trunc(cast(column, Numeric) * UNITS_PER_YUAN), BigInteger)
    dot = func.instr(column, ".")
    fraction = func.substr(func.substr(column, dot + 1).op("||")("0" * DECIMALS), 1, DECIMALS)
    return case(
        (dot == 0, cast(column, BigInteger) * UNITS_PER_YUAN),
        else_=cast(func.substr(column, 1, dot - 1), BigInteger) * UNITS_PER_YUAN
        + cast(fraction, BigInteger))


def micros_sql(column: Any, sqlite: bool) -> ColumnElement[int]:
    """A UTC time column as whole microseconds since the epoch. SQLite keeps the text
    'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format); PostgreSQL's EXTRACT is numeric,
    exact to the microsecond."""
    if not sqlite:
        return cast(extract("epoch", column) * 1_000_000, BigInteger)
    # whole seconds from the text without its fraction: SQLite's date functions keep
    # milliseconds and would round 01.999999 up to 02
    return (cast(func.strftime("%s", func.substr(column, 1, 19)), BigInteger) * 1_000_000
            + cast(func.substr(column, 21, 6), BigInteger))


def stream_columns(sqlite: bool) -> tuple[Any, ...]:
    """SELECT list: trade_id, ticker, side, quantity, price units, fee units, time micros,
    import_seq."""
    return (col(Trade.trade_id), col(Trade.ticker), col(Trade.side), col(Trade.quantity),
            units_sql(col(Trade.price), sqlite), units_sql(col(Trade.fee), sqlite),
            micros_sql(col(Trade.trade_time), sqlite), col(Trade.import_seq))


async def fetch(session: AsyncSession, query: Select[Any], sqlite: bool) -> list[Sequence[Any]]:
    """The page's rows straight from the driver (aiosqlite or asyncpg): plain tuples, without
    SQLAlchemy's per-row result handling, which cost as much as SQLite's query. Bound values
    are converted as UtcDateTime would (naive UTC text on SQLite)."""
    conn = await session.connection()
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    values = compiled.params
    params = [_driver_value(values[name], sqlite) for name in compiled.positiontup or ()]
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    if sqlite:
        return list(await raw.execute_fetchall(str(compiled), params))
    return list(await raw.fetch(str(compiled), *params))


def sqlite_time(when: datetime) -> str:
    """A datetime as UtcDateTime stores it on SQLite: naive UTC text, always with the
    microseconds (SQLAlchemy's format; micros_sql reads it)."""
    when = as_utc(when)
    return f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond:06d}"


def _driver_value(value: Any, sqlite: bool) -> Any:
    return sqlite_time(value) if isinstance(value, datetime) and sqlite else value


def time_of(micros: int) -> datetime:
    """The stored instant a micros column came from (for the next page's keyset)."""
    return _EPOCH + timedelta(microseconds=micros)


def trade_columns(client_id: str, rows: Sequence[Sequence[Any]]) -> holding_pb2.TradeColumns:
    """Rows of (trade_id, ticker, side, quantity, price units, fee units, time micros, ...)
    as one batch of parallel columns."""
    if not rows:
        return holding_pb2.TradeColumns(client_id=client_id)
    ids, tickers, sides, quantities, prices, fees, times = list(zip(*rows, strict=True))[:7]
    index: dict[str, int] = {}
    ticker_indexes = [index.setdefault(t, len(index)) for t in tickers]
    return holding_pb2.TradeColumns(
        client_id=client_id, trade_ids=ids, tickers=list(index),
        ticker_indexes=ticker_indexes, sides=sides, quantities=quantities,
        price_units=prices, fee_units=fees, trade_time_micros=times)

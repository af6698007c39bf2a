"""StreamTrades' reading side: a client's trades as columns (TradeColumns in holding.proto),
read from the integer columns the import writes (price_units, fee_units: int64 units of 1e-8
yuan; time_micros: microseconds since the epoch, UTC), so nothing is converted per row in the
database or in Python.

A 100,000-trade history is the case this is built for, a million the case it must survive. A
page is a range of ix_directory_trade_client_order (client_id, time_micros, import_seq,
trade_id), the page order itself: the database seeks to the page's start and reads TRADE_BATCH
index entries, without a sort. (PostgreSQL needs statistics of the table for that plan:
without them it reads and sorts every remaining trade of the client for each page, so a large
import ends with ANALYZE.) The SQL is written once per stream by SQLAlchemy and run page after
page straight through the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from branch.directory.v1 import holding_pb2
from sqlalchemy import Dialect, bindparam, select, tuple_
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import as_utc
from services.directory.models import Trade

# columns of a page row, in this order (trade_columns reads the first seven, the keyset the
# time, sequence and id)
_COLUMNS: tuple[Any, ...] = (
    col(Trade.trade_id), col(Trade.ticker), col(Trade.side), col(Trade.quantity),
    col(Trade.price_units), col(Trade.fee_units), col(Trade.time_micros),
    col(Trade.import_seq))


def page_sql(dialect: Dialect, *, start: bool, end: bool, after: bool,
             limit: int) -> tuple[str, tuple[str, ...]]:
    """The SQL of one page for the driver, and the names of its positional parameters in
    order: client_id; start and end (microseconds, start inclusive, end exclusive) when
    asked; after_micros, after_seq and after_id (the previous page's last row) when after.
    At most limit rows.
    Rows are (trade_id, ticker, side, quantity, price units, fee units, time micros,
    import_seq), in time order, ties in import order, then trade id (rows imported before
    import order was kept have import_seq 0)."""
    query = select(*_COLUMNS).where(col(Trade.client_id) == bindparam("client_id"))
    if start:
        query = query.where(col(Trade.time_micros) >= bindparam("start"))
    if end:
        query = query.where(col(Trade.time_micros) < bindparam("end"))
    if after:
        # a row value, not the equivalent ORs: both databases seek the index to it
        query = query.where(
            tuple_(col(Trade.time_micros), col(Trade.import_seq), col(Trade.trade_id))
            > tuple_(bindparam("after_micros"), bindparam("after_seq"), bindparam("after_id")))
    query = query.order_by(col(Trade.time_micros), col(Trade.import_seq),
                           col(Trade.trade_id))
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    # the limit in the text (SQLite's compiler would add an OFFSET parameter to a bound one)
    return f"{compiled} LIMIT {int(limit)}", tuple(compiled.positiontup or ())


async def fetch(session: AsyncSession, sql: str, params: Sequence[Any],
                sqlite: bool) -> list[Sequence[Any]]:
    """A page's rows straight from the driver (aiosqlite or asyncpg): plain tuples, without
    SQLAlchemy's per-row result handling, which cost as much as SQLite's query."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    if sqlite:
        return list(await raw.execute_fetchall(sql, params))
    return list(await raw.fetch(sql, *params))


def sqlite_time(when: datetime) -> str:
    """A datetime as UtcDateTime stores it on SQLite: naive UTC text, always with the
    microseconds (SQLAlchemy's format; micros_sql reads it)."""
    # isoformat with the microseconds always: the same text as the f-string of SQLAlchemy's
    # format, at half the cost (a million of these in a large import)
    return as_utc(when).replace(tzinfo=None).isoformat(" ", "microseconds")


def trade_columns(client_id: str, rows: Sequence[Sequence[Any]]) -> holding_pb2.TradeColumns:
    """Rows of (trade_id, ticker, side, quantity, price units, fee units, time micros, ...)
    as one batch of parallel columns."""
    out = holding_pb2.TradeColumns()
    fill_columns(out, client_id, rows)
    return out


def fill_columns(out: holding_pb2.TradeColumns, client_id: str,
                 rows: Sequence[Sequence[Any]]) -> None:
    """trade_columns into a message already in place (a response's columns field): a
    TradeColumns passed to the response's constructor would be copied, a tenth of the
    stream's CPU."""
    out.client_id = client_id
    if not rows:
        return
    ids, tickers, sides, quantities, prices, fees, times = list(zip(*rows, strict=True))[:7]
    index: dict[str, int] = {}
    out.ticker_indexes.extend([index.setdefault(t, len(index)) for t in tickers])
    out.tickers.extend(index)
    out.trade_ids.extend(ids)
    out.sides.extend(sides)
    out.quantities.extend(quantities)
    out.price_units.extend(prices)
    out.fee_units.extend(fees)
    out.trade_time_micros.extend(times)

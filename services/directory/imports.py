"""The trading system's import stream: securities, trades, holding snapshots, corporate actions.

Trades are idempotent on trade id, holdings on (client, ticker, as-of) and corporate actions on
(ticker, ex-date, kind): a re-sent file counts as duplicates and changes nothing. Records are
applied in batches, each in one transaction with its holdings.updated event. New trades take
import sequence numbers in stream order, so trades at the same instant keep their file order.
A validate_only stream runs every check in one transaction that is then rolled back.

Built for a branch's daily files of up to a million trades, streamed: memory holds one batch
(5000 records), never the file. A well-formed trade is checked by one pass over plain values
(_fast_trade); only one that fails it goes through the full checks, which name the field and
reason. New trades are written with one statement per batch: executemany on SQLite (one
writer at a time, so the batch's duplicate lookup is exact); on PostgreSQL COPY into a
temporary table, then INSERT .. ON CONFLICT (trade_id) DO NOTHING RETURNING, so a trade id
another import wrote meanwhile counts as a duplicate instead of failing the batch.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import events_pb2, holding_pb2
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock
from services.common.db import Database
from services.common.errors import Violations
from services.common.events import emit
from services.common.protos import from_ts
from services.common.request_checks import MAX_ID, collect
from services.common.units import DECIMALS, UNITS_PER_YUAN, fits_units, micros, units
from services.common.upsert import upsert
from services.directory import corporate_actions
from services.directory.models import Client, Holding, ImportCounter, Security, Trade
from services.directory.trade_stream import sqlite_time
from services.directory.validation import (
    TICKER,
    check_date,
    check_decimal,
    check_text,
    check_ticker,
    decimal_of,
)

BATCH = 5000
# A record is an ImportRecord, or an ImportTradesRequest carrying one (same oneof).
Record = api.ImportRecord | api.ImportTradesRequest
MAX_REJECTIONS = 1000
# an import that accepts this many records (a trade file: trades) refreshes PostgreSQL's
# statistics of directory_trade
ANALYZE_AFTER = 10_000
# The exchanges opened in December 1990; a trade time before it is a typing or unit mistake.
EARLIEST_TRADE = datetime(1990, 12, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
# Clocks of the trading system and the directory may differ by this much.
CLOCK_SKEW = timedelta(minutes=5)
_EARLIEST_MICROS = micros(EARLIEST_TRADE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a decimal already in normal form or nearly (trailing zeros): 1-10 integer digits without a
# leading zero, at most 8 decimal places; anything else takes the full check
_PLAIN_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,9})(?:\.([0-9]{1,8}))?")
# in this order: the SQLite insert expects trade_time eighth
_TRADE_COLUMNS = ("trade_id", "client_id", "ticker", "side", "quantity", "price", "fee",
                  "trade_time", "import_seq", "price_units", "fee_units", "time_micros")


@dataclass
class ImportResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejections: list[api.ImportRejection] = field(default_factory=list)

    def reject(self, index: int, violations: Violations) -> None:
        self.rejected += 1
        for field_name, reason in violations.items:
            if len(self.rejections) < MAX_REJECTIONS:
                self.rejections.append(api.ImportRejection(index=index, field=field_name,
                                                           reason=reason))

    def to_proto(self) -> api.ImportTradesResponse:
        return api.ImportTradesResponse(accepted=self.accepted, duplicate=self.duplicate,
                                        rejected=self.rejected, rejections=self.rejections)


class _Rollback(Exception):
    """Ends a validate_only batch's transaction without committing it."""


async def import_stream(
    db: Database, clock: Clock, records: AsyncIterator[api.ImportTradesRequest]
) -> ImportResult:
    """Apply the stream's records; counts and the first rejections, per record index.

    With validate_only on the first message, each batch runs the same checks in a transaction
    that is rolled back, so nothing is written; trade ids accepted earlier in the stream are
    remembered, so the counts are those a real import would give. (A security, holding or
    corporate action repeated more than a batch, 5000 records, apart counts twice.)
    """
    result = ImportResult()
    stream = aiter(records)
    first = await anext(stream, None)
    if first is None:
        return result
    # clients found in an earlier batch (clients are never deleted, so they stay found)
    known: set[str] = set()
    if first.validate_only:
        seen: set[str] = set()
        async for batch in _batches(first, stream):
            try:
                async with db.transaction() as session:
                    await _apply(session, clock.now(), batch, result, known, seen)
                    raise _Rollback
            except _Rollback:
                pass
        return result
    before = result.accepted
    async for batch in _batches(first, stream):
        async with db.transaction() as session:
            await _apply(session, clock.now(), batch, result, known)
    if not db.is_sqlite and result.accepted - before >= ANALYZE_AFTER:
        await _analyze_trades(db)
    return result


async def _analyze_trades(db: Database) -> None:
    """Fresh planner statistics for directory_trade after a large import (PostgreSQL).

    Without them (a table just filled, before autovacuum's next round) the planner takes a
    client's trades for a few hundred rows and answers each StreamTrades page by reading
    and sorting every remaining trade of the client, though ix_directory_trade_client_order
    holds them in page order: 48 ms a page instead of 5 at 100,000 trades, and growing with
    the history. ANALYZE samples a fixed 30,000 rows (a fraction of a second)."""
    async with db.transaction() as session:
        await (await session.connection()).exec_driver_sql("ANALYZE directory_trade")


async def _batches(
    first: api.ImportTradesRequest, rest: AsyncIterator[api.ImportTradesRequest]
) -> AsyncIterator[list[tuple[int, Record]]]:
    """Numbered records in stream order, BATCH at a time."""
    batch: list[tuple[int, Record]] = []
    index = 0

    async def messages() -> AsyncIterator[api.ImportTradesRequest]:
        yield first
        async for message in rest:
            yield message

    async for message in messages():
        # the message itself is a record when its oneof is set (or when it is empty, which
        # is rejected as such); then come the records of its batch
        # (a bare validate_only message is a header that carries the flag alone)
        bare = not message.WhichOneof("record") and not message.batch
        singles = [message] if message.WhichOneof("record") or (
            bare and not message.validate_only) else []
        records: list[Record] = [*singles, *message.batch]
        for record in records:
            batch.append((index, record))
            index += 1
            if len(batch) >= BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _check_trade(t: holding_pb2.Trade, now: datetime) -> Violations:
    v = Violations()
    collect(v, t, "trade")
    if v:
        return v
    check_text(v, "trade.trade_id", t.trade_id, max_len=64, required=True)
    v.check(bool(t.client_id), "trade.client_id", "required")
    check_ticker(v, "trade.ticker", t.ticker)
    v.check(t.side in (holding_pb2.SIDE_BUY, holding_pb2.SIDE_SELL), "trade.side", "BUY or SELL")
    v.check(t.quantity > 0, "trade.quantity", "must be greater than zero")
    for name, text, positive in (("price", t.price, True), ("fee", t.fee or "0", False)):
        before = len(v.items)
        check_decimal(v, f"trade.{name}", text, positive=positive)
        number = decimal_of(text)
        # exact in the trade stream's units (TradeColumns: int64 of 1e-8 yuan)
        why = fits_units(number) if number is not None and len(v.items) == before else None
        if why:
            v.add(f"trade.{name}", why)
    when = from_ts(t.trade_time)
    if when is None:
        v.add("trade.trade_time", "required")
    elif when < EARLIEST_TRADE:
        v.add("trade.trade_time", "on or after 1990-12-01 (the exchanges opened in December 1990)")
    elif when > now + CLOCK_SKEW:
        v.add("trade.trade_time", "must not be in the future")
    return v


def _plain_decimal(text: str, positive: bool) -> tuple[str, int] | None:
    """check_decimal's normal form of a plain decimal ('12.30' -> '12.3') and its units of
    1e-8 yuan (services.common.units.units of it), or None when the text needs the full
    check (or fails it)."""
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match.groups()
    fraction = (fraction or "").rstrip("0")
    if positive and whole == "0" and not fraction:
        return None
    if not fraction:
        return whole, int(whole) * UNITS_PER_YUAN
    return (f"{whole}.{fraction}",
            int(whole) * UNITS_PER_YUAN + int(fraction.ljust(DECIMALS, "0")))


def _fast_trade(t: holding_pb2.Trade, latest_micros: int) -> dict[str, Any] | None:
    """The row of a trade that passes every check of _check_trade, found without building
    Violations; None when the full check must run (it names what is wrong, if anything).
    The client's existence is checked by the caller."""
    trade_id, client_id = t.trade_id, t.client_id
    if not (trade_id.strip() and len(trade_id) <= 64 and "\x00" not in trade_id
            and client_id and len(client_id) <= MAX_ID and "\x00" not in client_id
            and TICKER.match(t.ticker) and 0 < t.quantity
            and t.side in (holding_pb2.SIDE_BUY, holding_pb2.SIDE_SELL)):
        return None
    price = _plain_decimal(t.price, True)
    fee = _plain_decimal(t.fee or "0", False)
    when = t.trade_time
    nanos = when.nanos
    if price is None or fee is None or not 0 <= nanos < 1_000_000_000:
        return None
    us = when.seconds * 1_000_000 + nanos // 1000
    if not _EARLIEST_MICROS <= us <= latest_micros:
        return None
    return {"trade_id": trade_id, "client_id": client_id, "ticker": t.ticker, "side": t.side,
            "quantity": t.quantity, "price": price[0], "fee": fee[0],
            "trade_time": _EPOCH + timedelta(microseconds=us),
            "price_units": price[1], "fee_units": fee[1], "time_micros": us}


def _check_holding(h: api.HoldingSnapshot) -> Violations:
    v = Violations()
    collect(v, h, "holding")
    if v:
        return v
    v.check(bool(h.client_id), "holding.client_id", "required")
    check_ticker(v, "holding.ticker", h.ticker)
    v.check(h.quantity >= 0, "holding.quantity", "must not be negative")
    check_decimal(v, "holding.cost_price", h.cost_price)
    check_decimal(v, "holding.market_price", h.market_price, allow_empty=True)
    check_date(v, "holding.as_of", h.as_of)
    return v


def _check_security(s: holding_pb2.Security) -> Violations:
    v = Violations()
    collect(v, s, "security")
    if v:
        return v
    check_ticker(v, "security.ticker", s.ticker)
    check_text(v, "security.name", s.name, max_len=100, required=False)
    v.check(1 <= s.risk_level <= 5, "security.risk_level", "R1 to R5")
    check_decimal(v, "security.last_price", s.last_price, allow_empty=True)
    return v


async def _apply(
    session: AsyncSession,
    now: datetime,
    batch: list[tuple[int, Record]],
    result: ImportResult,
    known: set[str],
    seen: set[str] | None = None,
) -> None:
    """Check and write one batch; known holds the client ids found so far (this batch's are
    added); seen (validate_only) holds trade ids accepted by earlier batches, whose writes
    were rolled back."""
    postgres = (await session.connection()).dialect.name == "postgresql"
    client_ids = set()
    trade_ids = []
    for _, rec in batch:
        kind = rec.WhichOneof("record")
        if kind == "trade":
            client_ids.add(rec.trade.client_id)
            trade_ids.append(rec.trade.trade_id)
        elif kind == "holding":
            client_ids.add(rec.holding.client_id)
    unknown = client_ids - known
    if unknown:
        known.update(
            (await session.exec(select(Client.id).where(col(Client.id).in_(unknown)))).all()
        )
    existing: set[str] = set()
    if trade_ids and not postgres:
        # SQLite: this transaction is the only writer, so the lookup is exact (PostgreSQL
        # finds them with ON CONFLICT instead, where a concurrent import cannot slip in)
        # straight to the driver: SQLAlchemy's expansion of 5,000 IN parameters cost more
        # than the lookup
        marks = ", ".join("?" * len(trade_ids))
        existing = {row[0] for row in (await (await session.connection()).exec_driver_sql(
            f"SELECT trade_id FROM directory_trade WHERE trade_id IN ({marks})",
            tuple(trade_ids)))}
    holdings: dict[tuple[str, str], Holding] = {}
    holding_clients = {rec.holding.client_id for _, rec in batch
                       if rec.WhichOneof("record") == "holding"} & known
    if holding_clients:
        for row in (await session.exec(
                select(Holding).where(col(Holding.client_id).in_(holding_clients)))).all():
            holdings[(row.client_id, row.ticker)] = row
    latest = micros(now + CLOCK_SKEW)
    new_trades: list[dict[str, Any]] = []
    touched_clients: set[str] = set()
    touched_tickers: set[str] = set()
    for index, rec in batch:
        kind = rec.WhichOneof("record")
        if kind == "trade":
            t = rec.trade
            values = _fast_trade(t, latest)
            if values is None or t.client_id not in known:
                v = _check_trade(t, now)
                if t.client_id and t.client_id not in known:
                    v.add("trade.client_id", "unknown client")
                if v:
                    result.reject(index, v)
                    continue
                price = check_decimal(Violations(), "", t.price)
                fee = check_decimal(Violations(), "", t.fee or "0")
                when = from_ts(t.trade_time)
                assert when is not None  # checked above
                values = dict(trade_id=t.trade_id, client_id=t.client_id, ticker=t.ticker,
                              side=t.side, quantity=t.quantity, price=price, fee=fee,
                              trade_time=when, price_units=units(price),
                              fee_units=units(fee), time_micros=micros(when))
            if t.trade_id in existing or (seen is not None and t.trade_id in seen):
                result.duplicate += 1
                continue
            existing.add(t.trade_id)
            new_trades.append(values)
            result.accepted += 1
        elif kind == "holding":
            h = rec.holding
            v = _check_holding(h)
            if h.client_id and h.client_id not in known:
                v.add("holding.client_id", "unknown client")
            if v:
                result.reject(index, v)
                continue
            if _upsert_holding(session, holdings, h, now):
                result.accepted += 1
                touched_clients.add(h.client_id)
                touched_tickers.add(h.ticker)
            else:
                result.duplicate += 1
        elif kind == "security":
            s = rec.security
            v = _check_security(s)
            if v:
                result.reject(index, v)
                continue
            stored = await session.get(Security, s.ticker)
            if stored is not None and (stored.name, stored.risk_level, stored.last_price) == (
                    s.name, s.risk_level, s.last_price):
                result.duplicate += 1
            else:
                # one statement: two imports naming a new security at once both inserted
                await upsert(session, Security, {
                    "ticker": s.ticker, "name": s.name, "risk_level": s.risk_level,
                    "last_price": s.last_price}, key=["ticker"])
                if stored is not None:
                    await session.refresh(stored)
                result.accepted += 1
        elif kind == "corporate_action":
            v, values = corporate_actions.check_action(rec.corporate_action, now)
            if v:
                result.reject(index, v)
            elif await corporate_actions.upsert(session, rec.corporate_action, values, now):
                result.accepted += 1
            else:
                result.duplicate += 1
        else:
            v = Violations()
            v.add("record", "empty record: set security, trade, holding or corporate_action")
            result.reject(index, v)
    if new_trades:
        first = await _take_sequence(session, len(new_trades))
        for offset, trade in enumerate(new_trades):
            trade["import_seq"] = first + offset
        written = await _insert_trades(session, new_trades, postgres)
        # ids another import wrote since (PostgreSQL) are duplicates after all
        result.accepted -= len(new_trades) - len(written)
        result.duplicate += len(new_trades) - len(written)
        if seen is not None:
            seen.update(written)
    if touched_clients:
        emit(session, subject="branch.directory.holdings.updated",
             message=events_pb2.HoldingsUpdated(client_ids=sorted(touched_clients),
                                                tickers=sorted(touched_tickers)),
             about="import", now=now)


async def _insert_trades(session: AsyncSession, rows: list[dict[str, Any]],
                         postgres: bool) -> list[str]:
    """Write the batch's new trades in one statement; the trade ids written."""
    table = Trade.__table__  # type: ignore[attr-defined]
    conn = await session.connection()
    if not postgres:
        # straight to the driver's executemany: SQLAlchemy's per-row parameter processing
        # cost as much as SQLite's insert. Times in the text UtcDateTime stores on SQLite
        # (SQLAlchemy's format, always with microseconds: the stream's micros_sql reads it)
        names = ", ".join(_TRADE_COLUMNS)
        marks = ", ".join("?" * len(_TRADE_COLUMNS))
        await conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) VALUES ({marks})",
            [(*(row[c] for c in _TRADE_COLUMNS[:7]), sqlite_time(row["trade_time"]),
              *(row[c] for c in _TRADE_COLUMNS[8:])) for row in rows])
        return [row["trade_id"] for row in rows]
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    # a temporary table per connection, emptied at every commit (and rolled back with the
    # transaction); COPY is the cheapest way in for thousands of rows
    await raw.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS import_trade_batch "
        "(LIKE directory_trade INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    await raw.copy_records_to_table(
        "import_trade_batch", columns=_TRADE_COLUMNS,
        records=[tuple(row[c] for c in _TRADE_COLUMNS) for row in rows])
    names = ", ".join(_TRADE_COLUMNS)
    written = await raw.fetch(
        f"INSERT INTO directory_trade ({names}) SELECT {names} FROM import_trade_batch "
        "ORDER BY import_seq ON CONFLICT (trade_id) DO NOTHING RETURNING trade_id")
    await raw.execute("DELETE FROM import_trade_batch")
    return [record[0] for record in written]


async def _take_sequence(session: AsyncSession, count: int) -> int:
    """The first of count consecutive import sequence numbers, taken under the counter row's
    lock (held to commit), so replicas importing at once never share a number."""
    taken = (await session.exec(
        update(ImportCounter).where(col(ImportCounter.name) == "trade")
        .values(next_value=col(ImportCounter.next_value) + count)
        .returning(col(ImportCounter.next_value)))).first()
    if taken is None:  # a database made without the migration's row
        session.add(ImportCounter(name="trade", next_value=1 + count))
        await session.flush()
        return 1
    return int(taken[0]) - count


def _upsert_holding(
    session: AsyncSession,
    holdings: dict[tuple[str, str], Holding],
    h: api.HoldingSnapshot,
    now: datetime,
) -> bool:
    """True when the snapshot changed the position; an older or identical one changes nothing.

    holdings holds the batch's clients' rows, loaded once, and gains the rows added here.
    """
    as_of = date.fromisoformat(h.as_of)
    cost = check_decimal(Violations(), "", h.cost_price)
    market = check_decimal(Violations(), "", h.market_price, allow_empty=True)
    row = holdings.get((h.client_id, h.ticker))
    if row is None:
        row = Holding(client_id=h.client_id, ticker=h.ticker, quantity=h.quantity,
                      cost_price=cost, market_price=market, as_of=as_of, updated_at=now)
        holdings[(h.client_id, h.ticker)] = row
        session.add(row)
        return True
    if as_of < row.as_of:
        return False
    if (row.quantity, row.cost_price, row.market_price, row.as_of) == (h.quantity, cost, market,
                                                                       as_of):
        return False
    row.quantity, row.cost_price, row.market_price, row.as_of = h.quantity, cost, market, as_of
    row.updated_at = now
    session.add(row)
    return True

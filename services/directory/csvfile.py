"""CSV files as people save them, turned into ImportTrades records (for `branchctl directory
import`).

Encoding rule: a named encoding (--encoding) is used as given; otherwise a UTF-16 byte-order
mark means UTF-16 (Excel's "Unicode text"), else UTF-8 with or without a byte-order mark
(Excel's "CSV UTF-8"), else GB18030, a superset of GBK (Chinese Excel's plain "CSV"). A file
that is none of these is refused with one line saying what to do.

Values: numbers may carry thousands separators ("1,000", "10,500.00"); a time without an
offset ("2024-03-04 09:35:00", "2024/3/4 9:35") is the branch's local time (BRANCH_TIMEZONE);
one with an offset or "Z" is taken as written.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import holding_pb2
from google.protobuf.timestamp_pb2 import Timestamp

TRADE_COLUMNS = ["trade_id", "client_id", "ticker", "side", "quantity", "price", "fee",
                 "trade_time"]
ACTION_COLUMNS = ["ticker", "ex_date", "kind"]
ACTION_VALUES = ["shares_per_10", "split_ratio", "cash_per_10", "rights_price"]
AUTO_ENCODINGS = ("utf-8-sig", "gb18030")
SIDES = {"buy": holding_pb2.SIDE_BUY, "sell": holding_pb2.SIDE_SELL,
         "买": holding_pb2.SIDE_BUY, "买入": holding_pb2.SIDE_BUY,
         "卖": holding_pb2.SIDE_SELL, "卖出": holding_pb2.SIDE_SELL,
         "買入": holding_pb2.SIDE_BUY, "賣出": holding_pb2.SIDE_SELL}
Kind = ca_pb2.CorporateActionKind
KINDS = {
    "bonus": Kind.CORPORATE_ACTION_KIND_BONUS, "送转股": Kind.CORPORATE_ACTION_KIND_BONUS,
    "送股": Kind.CORPORATE_ACTION_KIND_BONUS, "转增": Kind.CORPORATE_ACTION_KIND_BONUS,
    "split": Kind.CORPORATE_ACTION_KIND_SPLIT, "拆股": Kind.CORPORATE_ACTION_KIND_SPLIT,
    "cash_dividend": Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND,
    "dividend": Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND,
    "派息": Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND,
    "rights": Kind.CORPORATE_ACTION_KIND_RIGHTS, "配股": Kind.CORPORATE_ACTION_KIND_RIGHTS,
}
THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
# Excel's own renderings of a date and time, besides ISO 8601
TIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y-%m-%d %H:%M")
DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%Y%m%d")
EPOCH = datetime(1970, 1, 1)


class FileError(ValueError):
    """The file cannot be read at all; the message is one line for a person."""


@dataclass
class Parsed:
    """Records to send, the file row of each, and rows refused before sending."""

    kind: str  # "trades" or "corporate actions"
    records: list[api.ImportRecord] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # (row, field, reason)


def decode(data: bytes, encoding: str = "") -> str:
    """The file's text by the module's encoding rule; FileError when it is not text."""
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise FileError(f"unknown encoding {encoding!r}; try utf-8, gb18030 or big5") from None
        tried = ["utf-8-sig" if name == "utf-8" else name]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        tried = ["utf-16"]
    else:
        tried = list(AUTO_ENCODINGS)
    error: UnicodeDecodeError | None = None
    for name in tried:
        try:
            return data.decode(name)
        except UnicodeDecodeError as exc:
            error = exc
    assert error is not None
    where = f"byte 0x{data[error.start]:02x} at offset {error.start}"
    if encoding:
        raise FileError(f"not {encoding} text ({where}); name the file's encoding with "
                        "--encoding, or save it from Excel as \"CSV UTF-8\"")
    raise FileError(f"neither UTF-8 nor GB18030/GBK text ({where}); save it from Excel as "
                    "\"CSV UTF-8\" or name its encoding with --encoding (e.g. big5)")


def plain_number(text: str) -> str:
    """'1,000' -> '1000', '10,500.00' -> '10500.00'; anything else stripped, unchanged."""
    text = text.strip()
    return text.replace(",", "") if THOUSANDS.match(text) else text


def parse_time(text: str, zone: ZoneInfo) -> datetime | None:
    """An aware datetime; one written without an offset is in zone. None if unreadable."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        for fmt in TIME_FORMATS:
            try:
                when = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def timestamp(when: datetime) -> Timestamp:
    """Exact for any year datetime holds (astimezone would overflow near year 1 or 9999)."""
    offset = when.utcoffset()
    assert offset is not None
    delta = when.replace(tzinfo=None) - EPOCH - offset
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000)


def parse_date(text: str) -> date | None:
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def read(data: bytes, zone: ZoneInfo, *, encoding: str = "", name: str = "file") -> Parsed:
    """Trades, or corporate actions when the header has ex_date and kind. FileError for a
    file that is not text or lacks columns; a bad value refuses only its row."""
    text = decode(data, encoding)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
    header = set(reader.fieldnames)
    if {"ex_date", "kind"} <= header:
        return _actions(reader, header, name)
    missing = set(TRADE_COLUMNS) - header - {"fee"}
    if missing:
        raise FileError(f"{name}: missing columns {', '.join(sorted(missing))} (trades need "
                        f"{','.join(TRADE_COLUMNS)}; corporate actions "
                        f"{','.join(ACTION_COLUMNS + ACTION_VALUES)})")
    out = Parsed("trades")
    for row_no, row in enumerate(reader, start=2):
        record, problems = _trade(row, zone)
        _keep(out, row_no, record, problems)
    return out


def _keep(out: Parsed, row_no: int, record: api.ImportRecord,
          problems: list[tuple[str, str]]) -> None:
    if problems:
        out.refused += [(row_no, f, r) for f, r in problems]
    else:
        out.records.append(record)
        out.rows.append(row_no)


def _value(row: dict[str, str | None], key: str) -> str:
    return (row.get(key) or "").strip()


def _trade(row: dict[str, str | None], zone: ZoneInfo
           ) -> tuple[api.ImportRecord, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    trade = holding_pb2.Trade(
        trade_id=_value(row, "trade_id"), client_id=_value(row, "client_id"),
        ticker=_value(row, "ticker"), side=SIDES.get(_value(row, "side").lower(), 0),  # type: ignore[arg-type]
        price=plain_number(_value(row, "price")), fee=plain_number(_value(row, "fee")) or "0")
    quantity = plain_number(_value(row, "quantity"))
    try:
        number = Decimal(quantity)
        if number != number.to_integral_value():
            raise InvalidOperation
        trade.quantity = int(number)
    except (InvalidOperation, ValueError):
        problems.append(("trade.quantity", f"{quantity!r} is not a whole number of shares"))
    raw = _value(row, "trade_time")
    when = parse_time(raw, zone) if raw else None
    if when is not None:
        trade.trade_time.CopyFrom(timestamp(when))
    elif raw:
        problems.append(("trade.trade_time", f"{raw!r} is not a time such as "
                         "2024-03-04 09:35:00 or 2024-03-04T09:35:00+08:00"))
    return api.ImportRecord(trade=trade), problems  # the server checks the rest


def _actions(reader: csv.DictReader[str], header: set[str], name: str) -> Parsed:
    missing = set(ACTION_COLUMNS) - header
    if missing:
        raise FileError(f"{name}: missing columns {', '.join(sorted(missing))}")
    out = Parsed("corporate actions")
    for row_no, row in enumerate(reader, start=2):
        problems: list[tuple[str, str]] = []
        raw_day = _value(row, "ex_date")
        day = parse_date(raw_day)
        if raw_day and day is None:
            problems.append(("corporate_action.ex_date", f"{raw_day!r} is not a date"))
        action = ca_pb2.CorporateAction(
            ticker=_value(row, "ticker"), ex_date=day.isoformat() if day else raw_day,
            kind=KINDS.get(_value(row, "kind").lower(), 0),  # type: ignore[arg-type]
            **{key: plain_number(_value(row, key)) for key in ACTION_VALUES})
        _keep(out, row_no, api.ImportRecord(corporate_action=action), problems)
    return out

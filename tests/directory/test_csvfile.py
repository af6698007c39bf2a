"""Reading CSV files as people save them: encodings, separators, branch-local times (pure)."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import holding_pb2

from services.directory import csvfile

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = "trade_id,client_id,ticker,side,quantity,price,fee,trade_time\n"
ROW = "T1,C1,600000,买入,\"1,000\",\"10,500.00\",2.00,2024-03-04 09:35:00\n"


def utc(record: api.ImportRecord) -> datetime:
    return record.trade.trade_time.ToDatetime(tzinfo=UTC)


@pytest.mark.parametrize("data", [
    (HEADER + ROW).encode("utf-8"),
    codecs.BOM_UTF8 + (HEADER + ROW).encode("utf-8"),  # Excel "CSV UTF-8"
    (HEADER + ROW).encode("gbk"),  # Chinese Excel "CSV"
    (HEADER + ROW).encode("gb18030"),
    (HEADER + ROW).replace("\n", "\r\n").encode("gbk"),
    codecs.BOM_UTF16_LE + (HEADER + ROW).replace(",", "\t").replace('"1\t000"', "1000")
    .replace('"10\t500.00"', "10500.00").encode("utf-16-le"),  # Excel "Unicode text"
], ids=["utf8", "utf8-bom", "gbk", "gb18030", "gbk-crlf", "utf16-tab"])
def test_encodings_detected(data: bytes) -> None:
    parsed = csvfile.read(data, SHANGHAI)
    assert not parsed.refused
    [record] = parsed.records
    t = record.trade
    assert (t.trade_id, t.side, t.quantity, t.price) == ("T1", holding_pb2.SIDE_BUY, 1000,
                                                         "10500.00")
    assert utc(record) == datetime(2024, 3, 4, 1, 35, tzinfo=UTC)


def test_named_encoding_and_refusals() -> None:
    big5 = (HEADER + ROW.replace("买入", "買入")).encode("big5")  # a Hong Kong or Taiwan export
    [record] = csvfile.read(big5, SHANGHAI, encoding="big5").records
    assert record.trade.side == holding_pb2.SIDE_BUY
    latin = (HEADER + "T1,C1,600000,buy,1,1,0,2024-03-04 09:35:00,café\n").encode("cp1252")
    with pytest.raises(csvfile.FileError) as err:
        csvfile.read(latin, SHANGHAI)
    assert "neither UTF-8 nor GB18030" in str(err.value) and "--encoding" in str(err.value)
    assert "\n" not in str(err.value)
    assert csvfile.read(latin, SHANGHAI, encoding="cp1252").records
    with pytest.raises(csvfile.FileError, match="unknown encoding"):
        csvfile.read(b"x", SHANGHAI, encoding="klingon")
    with pytest.raises(csvfile.FileError, match="not utf-8 text"):
        csvfile.read((HEADER + ROW).encode("gbk"), SHANGHAI, encoding="utf-8")
    with pytest.raises(csvfile.FileError, match="missing columns price, .*trade_id"):
        csvfile.read(b"tradeid,client_id\n", SHANGHAI)


def test_bom_header_is_not_a_column_name() -> None:
    # the reported bug: a BOM glued to the first header made "missing columns trade_id"
    parsed = csvfile.read(codecs.BOM_UTF8 + (HEADER + ROW).encode(), SHANGHAI)
    assert [r.trade.trade_id for r in parsed.records] == ["T1"]


@pytest.mark.parametrize(("text", "plain"), [
    ("1,000", "1000"), ("10,500.00", "10500.00"), ("1,234,567.5", "1234567.5"),
    (" 12.5 ", "12.5"), ("1,00", "1,00"), ("12,3456", "12,3456"), ("-1,000", "-1000"),
])
def test_thousands_separators(text: str, plain: str) -> None:
    assert csvfile.plain_number(text) == plain


@pytest.mark.parametrize(("zone", "text", "expected"), [
    # no offset: branch-local; the first minutes after local midnight are the local day
    ("Asia/Shanghai", "2024-03-04 00:05:00", datetime(2024, 3, 3, 16, 5, tzinfo=UTC)),
    ("Asia/Shanghai", "2024/3/4 0:05", datetime(2024, 3, 3, 16, 5, tzinfo=UTC)),
    ("Asia/Shanghai", "2024-03-04", datetime(2024, 3, 3, 16, 0, tzinfo=UTC)),
    ("America/New_York", "2024-03-04 00:05:00", datetime(2024, 3, 4, 5, 5, tzinfo=UTC)),
    ("America/New_York", "2024-07-04 00:05", datetime(2024, 7, 4, 4, 5, tzinfo=UTC)),  # DST
    ("UTC", "2024-03-04T00:05:00", datetime(2024, 3, 4, 0, 5, tzinfo=UTC)),
    ("Asia/Kolkata", "2024-03-04 00:01:00", datetime(2024, 3, 3, 18, 31, tzinfo=UTC)),
    # an offset or Z is taken as written, whatever the branch zone
    ("America/New_York", "2024-03-04T14:55:00+08:00", datetime(2024, 3, 4, 6, 55, tzinfo=UTC)),
    ("Asia/Shanghai", "2024-03-04T06:55:00Z", datetime(2024, 3, 4, 6, 55, tzinfo=UTC)),
])
def test_times_without_offset_are_branch_local(zone: str, text: str, expected: datetime) -> None:
    parsed = csvfile.read((HEADER + f"T1,C1,600000,buy,1,1,0,{text}\n").encode(), ZoneInfo(zone))
    assert utc(parsed.records[0]) == expected


def test_bad_values_refuse_their_row_only() -> None:
    data = (HEADER + "T1,C1,600000,buy,1.5,1,0,2024-03-04 09:35\n"
            "T2,C1,600000,buy,10,1,0,yesterday\n"
            "T3,C1,600000,buy,10,1,0,2024-03-04 09:35\n").encode()
    parsed = csvfile.read(data, SHANGHAI)
    assert [r.trade.trade_id for r in parsed.records] == ["T3"] and parsed.rows == [4]
    assert [(row, name) for row, name, _ in parsed.refused] == [
        (2, "trade.quantity"), (3, "trade.trade_time")]


def test_extreme_years_become_exact_timestamps() -> None:
    # the server refuses these on trade.trade_time; the CLI must send them, not crash
    for text, seconds in (("0001-01-01 00:00:00", -62135625943),
                          ("9999-12-31 23:59:59", 253402271999)):
        parsed = csvfile.read((HEADER + f"T1,C1,600000,buy,1,1,0,{text}\n").encode(), SHANGHAI)
        assert parsed.records[0].trade.trade_time.seconds == seconds


def test_sample_files_read() -> None:
    bom = csvfile.read((SAMPLES / "trades-utf8-bom.csv").read_bytes(), SHANGHAI)
    assert [r.trade.trade_id for r in bom.records] == ["T9", "T10", "K1", "K2"]
    assert bom.records[2].trade.price == "1050.00" and bom.records[2].trade.quantity == 1000
    gbk = csvfile.read((SAMPLES / "trades-gbk.csv").read_bytes(), SHANGHAI)
    assert len(gbk.records) == 8 and not gbk.refused
    assert {r.trade.side for r in gbk.records} == {holding_pb2.SIDE_BUY, holding_pb2.SIDE_SELL}
    actions = csvfile.read((SAMPLES / "corporate-actions.csv").read_bytes(), SHANGHAI)
    assert actions.kind == "corporate actions"
    assert [(r.corporate_action.ticker, r.corporate_action.kind) for r in actions.records] == [
        ("600690", ca_pb2.CORPORATE_ACTION_KIND_BONUS),
        ("000001", ca_pb2.CORPORATE_ACTION_KIND_SPLIT),
        ("600036", ca_pb2.CORPORATE_ACTION_KIND_CASH_DIVIDEND),
        ("601166", ca_pb2.CORPORATE_ACTION_KIND_RIGHTS)]

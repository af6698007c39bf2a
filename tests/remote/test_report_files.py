"""Reports from real files: the samples/ folder imported through the real branchctl and through
ImportTrades, then CreateReport's figures; clocks frozen at several hours and zones.

Sample expectations (Asia/Shanghai), all fees 0 unless said:
  600000 buy 1000 x 10.50 (fee 2) at 09:35 local, sell 1000 x 10.80 (fee 2) 14:55+08:00 -> 296.00
  600519 T9 buy 10 x 100.00, T10 sell 10 x 101.00 in the same second        ->    10.00
  601318 buy "1,000" x "1,050.00", sell "1,000" x "1,060.50"                 -> 10500.00
  600690 buy 100 x 20.00, 10-for-10 bonus, sell 200 x 11.00                  ->   200.00
  000001 buy 300 x 12.00, split 1:2, sell 600 x 6.50                         ->   300.00
  600036 buy 1000 x 30.00, dividend 5 yuan per 10, sell 1000 x 29.80         ->   300.00
  601166 buy 1000 x 18.00, rights 3 per 10 at 15.00, sell 1300 x 17.50       ->   250.00
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from branch.directory.v1 import client_pb2, holding_pb2
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import report_pb2
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

from services.common.clock import FakeClock
from services.common.protos import ts
from services.common.server import ServiceRunner
from services.directory.server import SPEC as DIRECTORY
from services.remote.server import SPEC as REMOTE
from tests.directory.factories import make_client
from tests.harness import ADMIN, SUPERVISOR, channel, make_settings, running, token

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceAsyncStub

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
BRANCHCTL = str(Path(sys.executable).parent / "branchctl")
SAMPLE_PNL = {"600000": "296.00", "600519": "10.00", "601318": "10500.00", "600690": "200.00",
              "000001": "300.00", "600036": "300.00", "601166": "250.00"}
Kind = ca_pb2.CorporateActionKind


@dataclass
class Suite:
    directory: ServiceRunner
    dir: DirectoryServiceAsyncStub
    remote: RemoteServiceAsyncStub
    zone: str


@asynccontextmanager
async def suite(tmp: Path, nats_url: str, zone: str, now: datetime) -> AsyncIterator[Suite]:
    """Directory and remote on one frozen clock, in the branch zone."""
    clock = FakeClock(now)
    async with running(DIRECTORY, make_settings(tmp / "dir", nats_url, timezone=zone),
                       clock=clock) as directory:
        settings = make_settings(tmp, nats_url, timezone=zone,
                                 directory_addr=f"127.0.0.1:{directory.port}")
        async with running(REMOTE, settings, clock=clock) as remote, \
                channel(directory) as dch, channel(remote) as rch:
            yield Suite(directory, DirectoryServiceStub(dch), RemoteServiceStub(rch), zone)


async def branchctl(s: Suite, home: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "BRANCHCTL_HOME": str(home), "BRANCH_TIMEZONE": s.zone,
           "BRANCH_DIRECTORY_ADDR": f"127.0.0.1:{s.directory.port}",
           "BRANCH_TOKEN": token("admin-1", "admin")}
    proc = await asyncio.create_subprocess_exec(
        BRANCHCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def sample_for(name: str, client_id: str, tmp: Path) -> Path:
    """The sample with its placeholder client id replaced, bytes and encoding kept."""
    path = tmp / name
    path.write_bytes((SAMPLES / name).read_bytes().replace(b"C-SAMPLE", client_id.encode()))
    return path


async def report(s: Suite, client_id: str) -> report_pb2.Report:
    made = await s.remote.CreateReport(api.CreateReportRequest(
        client_id=client_id, period_start="2024-01-01", period_end="2024-12-31"),
        metadata=SUPERVISOR)
    return await s.remote.GetReport(api.GetReportRequest(id=made.id), metadata=SUPERVISOR)


# 00:05 and 23:55 in Shanghai (a different UTC date) and mid-day
@pytest.mark.parametrize("now", [datetime(2026, 3, 1, 16, 5, tzinfo=UTC),
                                 datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
                                 datetime(2026, 3, 2, 15, 55, tzinfo=UTC)],
                         ids=["0005-local", "1200-local", "2355-local"])
async def test_samples_through_branchctl(tmp_path: Path, nats_url: str, now: datetime) -> None:
    async with suite(tmp_path, nats_url, "Asia/Shanghai", now) as s:
        client = await make_client(s.dir, channel=client_pb2.CHANNEL_REMOTE)
        home = tmp_path / "ctl"
        files = [sample_for(n, client.id, tmp_path) for n in (
            "trades-utf8-bom.csv", "trades-gbk.csv", "trades-local-times.csv",
            "corporate-actions.csv")]
        # a dry run first: the counts, and nothing written
        code, out = await branchctl(s, home, "directory", "import", "--dry-run", str(files[1]))
        assert code == 0 and "nothing written: would be accepted 8, duplicate 0, rejected 0" in out
        trades = [t async for b in s.dir.StreamTrades(dapi.StreamTradesRequest(
            client_id=client.id), metadata=ADMIN) for t in b.columns.trade_ids]
        assert trades == []
        expected = ["trades: accepted 4,", "trades: accepted 8,", "trades: accepted 2,",
                    "corporate actions: accepted 4,"]
        for path, line in zip(files, expected, strict=True):
            code, out = await branchctl(s, home, "directory", "import", str(path))
            assert code == 0 and line in out and "rejected 0" in out, out
            assert "Traceback" not in out

        got = await report(s, client.id)
        f = got.figures
        assert {t.ticker: t.realised_pnl for t in f.tickers} == SAMPLE_PNL
        assert not any(t.incomplete or t.unmatched_quantity for t in f.tickers)
        assert f.realised_pnl == "11856.00" and f.win_rate == 1.0
        assert "| 600690 |  | 2 | 4200.00 | 200.00 | 1 / 1 |" in got.markdown
        assert "| Win rate | 100.0% |" in got.markdown


async def test_unreadable_file_is_one_clear_line(tmp_path: Path, nats_url: str) -> None:
    async with suite(tmp_path, nats_url, "Asia/Shanghai",
                     datetime(2026, 3, 2, 4, tzinfo=UTC)) as s:
        client = await make_client(s.dir)
        latin = tmp_path / "latin1.csv"
        latin.write_bytes(("trade_id,client_id,ticker,side,quantity,price,fee,trade_time\n"
                           f"é1,{client.id},600000,buy,1,1,0,2024-03-04 09:35\n")
                          .encode("cp1252"))
        code, out = await branchctl(s, tmp_path / "ctl", "directory", "import", str(latin))
        assert code == 1 and "Traceback" not in out and len(out.strip().splitlines()) == 1
        assert "neither UTF-8 nor GB18030" in out and "--encoding" in out
        code, out = await branchctl(s, tmp_path / "ctl", "directory", "import",
                                    "--encoding", "cp1252", str(latin))
        assert code == 0 and "trades: accepted 1," in out


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def rpc_records(zone: str, client_id: str) -> list[dapi.ImportRecord]:
    """The numbered cases and more, as ImportTrades records with times in the branch zone."""
    buy, sell = holding_pb2.SIDE_BUY, holding_pb2.SIDE_SELL
    trades = [
        # case 3, times in the branch zone
        ("L1", "600000", buy, 1000, "10.50", "2.00", local(zone, 2024, 3, 4, 9, 35)),
        ("L2", "600000", sell, 1000, "10.80", "2.00", local(zone, 2024, 3, 4, 14, 55)),
        # case 4: same second, import order
        ("T9", "600519", buy, 10, "100.00", "0", local(zone, 2024, 3, 5, 10)),
        ("T10", "600519", sell, 10, "101.00", "0", local(zone, 2024, 3, 5, 10)),
        # case 6: 10-for-10 bonus
        ("B1", "600690", buy, 100, "20.00", "0", local(zone, 2024, 5, 10, 10)),
        ("B2", "600690", sell, 200, "11.00", "0", local(zone, 2024, 6, 20, 10)),
        # the first minutes after local midnight: 10送5 on 2024-09-02 applies to the buy at
        # 23:59 the day before and before the sell at 00:10 -> 300 x 7 - 200 x 10 = +100.00
        ("M1", "600900", buy, 200, "10.00", "0", local(zone, 2024, 9, 1, 23, 59)),
        ("M2", "600900", sell, 300, "7.00", "0", local(zone, 2024, 9, 2, 0, 10)),
        # consolidation 10 into 1 across two lots: 2000 -> 200 shares, cost 2099.50 kept
        ("C1", "600100", buy, 1005, "1.00", "0", local(zone, 2024, 3, 11, 10)),
        ("C2", "600100", buy, 995, "1.10", "0", local(zone, 2024, 3, 12, 10)),
        ("C3", "600100", sell, 200, "11.00", "0", local(zone, 2024, 4, 8, 10)),
        # 10送3派5 on one ex-date: cost 10000 - 500, 1300 shares x 7.50 = 9750 -> +250.00
        ("D1", "600111", buy, 1000, "10.00", "0", local(zone, 2024, 5, 6, 10)),
        ("D2", "600111", sell, 1300, "7.50", "0", local(zone, 2024, 6, 17, 10)),
        # a sell with no earlier buy: incomplete, no P&L
        ("U1", "000002", sell, 500, "8.00", "0", local(zone, 2024, 5, 20, 10)),
        # a sale before the bonus's ex-date is not adjusted: 100 x 21 - 100 x 20 = +100.00
        ("E1", "600200", buy, 100, "20.00", "0", local(zone, 2024, 6, 2, 23, 50)),
        ("E2", "600200", sell, 100, "21.00", "0", local(zone, 2024, 6, 2, 23, 55)),
    ]
    actions = [
        ("600690", "2024-06-03", Kind.CORPORATE_ACTION_KIND_BONUS, {"shares_per_10": "10"}),
        ("600900", "2024-09-02", Kind.CORPORATE_ACTION_KIND_BONUS, {"shares_per_10": "5"}),
        ("600100", "2024-04-01", Kind.CORPORATE_ACTION_KIND_SPLIT, {"split_ratio": "0.1"}),
        ("600111", "2024-06-03", Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND,
         {"cash_per_10": "5"}),
        ("600111", "2024-06-03", Kind.CORPORATE_ACTION_KIND_BONUS, {"shares_per_10": "3"}),
        ("600200", "2024-06-03", Kind.CORPORATE_ACTION_KIND_BONUS, {"shares_per_10": "10"}),
    ]
    return [
        *[dapi.ImportRecord(trade=holding_pb2.Trade(
            trade_id=f"{client_id}-{tid}", client_id=client_id, ticker=ticker, side=side,
            quantity=qty, price=price, fee=fee, trade_time=ts(when)))
          for tid, ticker, side, qty, price, fee, when in trades],
        *[dapi.ImportRecord(corporate_action=ca_pb2.CorporateAction(
            ticker=ticker, ex_date=day, kind=kind, **values))
          for ticker, day, kind, values in actions],
    ]


@pytest.mark.parametrize(("zone", "now"), [
    ("Asia/Shanghai", datetime(2026, 3, 1, 16, 5, tzinfo=UTC)),  # 00:05 local
    ("America/New_York", datetime(2026, 3, 2, 5, 5, tzinfo=UTC)),  # 00:05 local
    ("Europe/London", datetime(2026, 3, 2, 23, 55, tzinfo=UTC)),  # 23:55 local
    ("UTC", datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
])
async def test_actions_through_import_trades(tmp_path: Path, nats_url: str, zone: str,
                                             now: datetime) -> None:
    async with suite(tmp_path, nats_url, zone, now) as s:
        client = await make_client(s.dir, channel=client_pb2.CHANNEL_REMOTE)

        async def gen() -> AsyncIterator[dapi.ImportTradesRequest]:
            yield dapi.ImportTradesRequest(batch=rpc_records(zone, client.id))

        result = await s.dir.ImportTrades(gen(), metadata=ADMIN)
        assert (result.accepted, result.rejected) == (22, 0), result.rejections
        got = await report(s, client.id)
        f = got.figures
        assert {t.ticker: t.realised_pnl for t in f.tickers} == {
            "600000": "296.00", "600519": "10.00", "600690": "200.00", "600900": "100.00",
            "600100": "100.50", "600111": "250.00", "600200": "100.00", "000002": ""}
        by = {t.ticker: t for t in f.tickers}
        assert by["000002"].incomplete and by["000002"].unmatched_quantity == 500
        assert not any(t.incomplete for t in f.tickers if t.ticker != "000002")
        # the totals leave the incomplete ticker out
        assert f.realised_pnl == "1056.50" and f.win_rate == 1.0
        assert "| 000002 |  | 1 | 4000.00 | incomplete |" in got.markdown
        assert "Incomplete: 000002 (500 shares sold with no earlier buy)" in got.markdown
        assert "incomplete" in got.html


async def test_dry_run_names_rows(tmp_path: Path, nats_url: str) -> None:
    async with suite(tmp_path, nats_url, "Asia/Shanghai",
                     datetime(2026, 3, 2, 4, tzinfo=UTC)) as s:
        client = await make_client(s.dir)
        path = tmp_path / "mixed.csv"
        path.write_text("trade_id,client_id,ticker,side,quantity,price,fee,trade_time\n"
                        f"G1,{client.id},600000,buy,\"1,000\",\"1,050.00\",0,2024-03-04 09:35\n"
                        f"G2,{client.id},600000,buy,1.5,10,0,2024-03-04 09:36\n"
                        f"G3,{client.id},600000,buy,10,10,0,1800-01-01 09:36\n"
                        f"G4,{client.id},600000,buy,10,10,0,2026-03-02 12:06\n")  # 6 min ahead
        code, out = await branchctl(s, tmp_path / "ctl", "directory", "import", "--dry-run",
                                    str(path))
        assert code == 0, out
        assert "would be accepted 1, duplicate 0, rejected 3" in out
        assert "row 3: trade.quantity" in out and "row 4: trade.trade_time" in out
        assert "row 5: trade.trade_time: must not be in the future" in out
        trades = [t async for b in s.dir.StreamTrades(dapi.StreamTradesRequest(
            client_id=client.id), metadata=ADMIN) for t in b.columns.trade_ids]
        assert trades == []
        code, out = await branchctl(s, tmp_path / "ctl", "directory", "import", str(path))
        assert "trades: accepted 1, duplicate 0, rejected 3" in out

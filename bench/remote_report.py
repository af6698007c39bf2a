"""Benchmark: the trading-record report of a client with 100,000 (or a million) trades.

Measurements, for each --trades size:
  * analysis: folding the trades (FIFO lots, per-ticker figures) from streamed batches of
    columns and rendering the Markdown and HTML documents, in-process; time, and peak traced
    memory (tracemalloc);
  * end to end: a directory in its own process, the remote service in this one (real NATS):
    ImportTrades of the history (with the directory process's peak RSS, VmHWM, the same
    figure as getrusage's ru_maxrss), CreateReport (remote streams the trades from the
    directory over gRPC), and StreamTrades alone, read and discarded (with the reader's own
    CPU). On SQLite, and on
    PostgreSQL too when BRANCH_TEST_POSTGRES_URL is set (a database made and dropped here).

Run: .venv/bin/python bench/remote_report.py [--trades N [N ...]] [--skip-e2e] [--sqlite-only]
Prints a small Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from branch.directory.v1 import client_pb2, holding_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from google.protobuf.timestamp_pb2 import Timestamp

TICKERS = [f"{600000 + i}" for i in range(60)]
SEED = 42


def synthetic_trades(client_id: str, n: int) -> Iterator[holding_pb2.Trade]:
    """n trades in time order over about four years; sells never exceed the position.
    Prices in fen (0.01 yuan), fees 0.025% with a 5-yuan minimum; generated lazily, so a
    million trades never sit in this process at once."""
    rng = random.Random(SEED)
    price = {t: rng.randint(500, 20000) for t in TICKERS}  # fen
    held = dict.fromkeys(TICKERS, 0)
    start = datetime(2022, 1, 3, 1, 30, tzinfo=UTC)
    step = int(timedelta(days=4 * 365) / n / timedelta(microseconds=1))
    base = int(start.timestamp()) * 1_000_000
    for i in range(n):
        ticker = rng.choice(TICKERS)
        price[ticker] = p = max(50, round(price[ticker] * (1 + rng.uniform(-0.03, 0.03))))
        if held[ticker] >= 100 and rng.random() < 0.48:
            qty = rng.randint(1, held[ticker] // 100) * 100
            side = holding_pb2.SIDE_SELL
            held[ticker] -= qty
        else:
            qty = rng.randint(1, 20) * 100
            side = holding_pb2.SIDE_BUY
            held[ticker] += qty
        fee = max(500, (p * qty * 25 + 50_000) // 100_000)  # fen, rounded
        micros = base + (i + 1) * step
        yield holding_pb2.Trade(
            trade_id=f"b-{i:07d}", client_id=client_id, ticker=ticker, side=side,
            quantity=qty, price=f"{p // 100}.{p % 100:02d}", fee=f"{fee // 100}.{fee % 100:02d}",
            trade_time=Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000))


def holdings_for(client_id: str, n: int) -> list[holding_pb2.Holding]:
    """The positions the n synthetic trades leave, at each ticker's last price."""
    qty: dict[str, int] = {}
    last: dict[str, str] = {}
    for t in synthetic_trades(client_id, n):
        qty[t.ticker] = qty.get(t.ticker, 0) + (t.quantity if t.side == 1 else -t.quantity)
        last[t.ticker] = t.price
    return [holding_pb2.Holding(ticker=k, quantity=v, market_price=last[k],
                                risk_level=client_pb2.RiskLevel.ValueType((int(k) % 5) + 1))
            for k, v in sorted(qty.items()) if v > 0]


def column_batches(client_id: str, n: int, size: int = 5000) -> list[holding_pb2.TradeColumns]:
    """The synthetic trades as the directory streams them: batches of columns."""
    from services.common.units import micros, units
    from services.directory.trade_stream import trade_columns

    out: list[holding_pb2.TradeColumns] = []
    rows: list[tuple[object, ...]] = []
    for t in synthetic_trades(client_id, n):
        rows.append((t.trade_id, t.ticker, t.side, t.quantity, units(t.price), units(t.fee),
                     micros(t.trade_time.ToDatetime(UTC))))
        if len(rows) == size:
            out.append(trade_columns(client_id, rows))
            rows = []
    if rows:
        out.append(trade_columns(client_id, rows))
    return out


def _rss_mib() -> float:
    """Current resident set size of this process (Linux), else the peak so far."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mib(pid: int) -> float:
    """A process's peak resident set size so far (Linux VmHWM: getrusage's ru_maxrss)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (all its threads), from /proc. On a shared
    machine this moves far less than wall time with other people's load."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def bench_analysis(n: int) -> dict[str, float]:
    from services.remote import render
    from services.remote.analysis import Analyzer

    batches = column_batches("c-bench", n)
    holdings = holdings_for("c-bench", n)
    client = client_pb2.Client(account_no="BENCH", risk_tolerance=client_pb2.RISK_TOLERANCE_C3)

    def run() -> None:
        a = Analyzer(0, 2**40)
        for batch in batches:
            a.add_columns(batch)
        f = a.figures(holdings, {}, 3, False)
        render.markdown(client, "2022-01-01", "2025-12-31", f, a.monthly)
        render.html(client, "2022-01-01", "2025-12-31", f, a.monthly)

    gc.collect()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    gc.collect()
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "peak_mib": peak / 2**20}


async def bench_end_to_end(n: int, database_url: str = "") -> dict[str, float]:
    import grpc
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
    from branch.remote.v1 import remote_service_pb2 as api
    from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

    from services.common.auth import TokenSigner
    from services.common.keys import jwks, key_from_seed
    from services.common.logs import configure_logging
    from services.common.nats_link import EmbeddedNats, free_port
    from services.common.server import ServiceRunner
    from services.common.settings import Settings
    from services.remote.server import SPEC as REMOTE

    configure_logging("error")
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = EmbeddedNats(Path(tmp) / "nats")
        nats_server.start()
        key = key_from_seed("bench signing key")
        trusted = jwks([key.public_jwk()])
        service_key = "bench-service-key-0123456789abcdef"
        port = free_port()
        env = {**os.environ, "BRANCH_DATA_DIR": str(Path(tmp) / "dir"),
               "BRANCH_NATS_URL": nats_server.url, "BRANCH_TRUSTED_KEYS": trusted,
               "BRANCH_SERVICE_KEY": service_key,
               "BRANCH_DIRECTORY_PORT": str(port), "BRANCH_LOG_LEVEL": "error"}
        if database_url:
            env["BRANCH_DATABASE_URL"] = database_url
        directory = subprocess.Popen(
            [sys.executable, "-m", "services.cli.branch", "serve", "directory"], env=env,
            stdout=subprocess.DEVNULL)
        settings = Settings(data_dir=Path(tmp), nats_url=nats_server.url, trusted_keys=trusted,
                            service_key=service_key,
                            directory_addr=f"127.0.0.1:{port}")
        remote = ServiceRunner(REMOTE, settings, port=0)
        await remote.start()
        signer = TokenSigner(key)
        now = datetime.now(UTC)
        admin = [("authorization",
                  f"Bearer {signer.issue('bench-admin', ['admin'], now, timedelta(hours=2))}")]
        agent_token = signer.issue("bench-agent", ["service_agent"], now, timedelta(hours=2))
        agent = (("authorization", f"Bearer {agent_token}"),)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as dch, \
                    grpc.aio.insecure_channel(f"127.0.0.1:{remote.port}") as rch:
                dstub, rstub = DirectoryServiceStub(dch), RemoteServiceStub(rch)
                await asyncio.wait_for(dch.channel_ready(), timeout=60)
                # remote asks the directory for its own service token once the directory
                # answers (retried each second): a report before that has no token to call with
                for _ in range(600):
                    if remote.ctx.tokens.current():
                        break
                    await asyncio.sleep(0.1)
                client = await dstub.CreateClient(dapi.CreateClientRequest(
                    client=client_pb2.Client(
                        account_no="BENCH0001", display_name="Bench", phone="13800000000",
                        channel=client_pb2.CHANNEL_REMOTE,
                        risk_tolerance=client_pb2.RISK_TOLERANCE_C3,
                        risk_assessed_on="2025-06-01", commission_rate="0.00025")),
                    metadata=admin)
                holdings = holdings_for(client.id, n)

                async def records() -> AsyncIterator[dapi.ImportTradesRequest]:
                    for t in TICKERS:
                        yield dapi.ImportTradesRequest(security=holding_pb2.Security(
                            ticker=t, name=f"S{t}",
                            risk_level=client_pb2.RiskLevel.ValueType((int(t) % 5) + 1)))
                    batch: list[dapi.ImportRecord] = []
                    for tr in synthetic_trades(client.id, n):
                        batch.append(dapi.ImportRecord(trade=tr))
                        if len(batch) == 1000:
                            yield dapi.ImportTradesRequest(batch=batch)
                            batch = []
                    if batch:
                        yield dapi.ImportTradesRequest(batch=batch)
                    for h in holdings:
                        yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
                            client_id=client.id, ticker=h.ticker, quantity=h.quantity,
                            cost_price=h.market_price, market_price=h.market_price,
                            as_of="2025-12-31"))

                rss_start = _peak_rss_mib(directory.pid)
                cpu0 = _cpu_seconds(directory.pid)
                t0 = time.perf_counter()
                imported = await dstub.ImportTrades(records(), metadata=admin, timeout=1800)
                import_seconds = time.perf_counter() - t0
                import_cpu = _cpu_seconds(directory.pid) - cpu0
                import_peak = _peak_rss_mib(directory.pid)
                assert imported.rejected == 0, imported.rejections[:3]
                assert imported.accepted == n + len(TICKERS) + len(holdings), imported
                gc.collect()
                rss_before = _rss_mib()
                peak = [rss_before]
                stop = asyncio.Event()

                async def sample() -> None:
                    while not stop.is_set():
                        peak[0] = max(peak[0], _rss_mib())
                        await asyncio.sleep(0.02)

                sampler = asyncio.create_task(sample())
                today = datetime.now(UTC).date()
                cpu0, own0 = _cpu_seconds(directory.pid), _cpu_seconds(os.getpid())
                t0 = time.perf_counter()
                report = await rstub.CreateReport(api.CreateReportRequest(
                    client_id=client.id, period_start="2022-01-01",
                    period_end=today.isoformat()), metadata=agent, timeout=600)
                seconds = time.perf_counter() - t0
                report_cpu = _cpu_seconds(directory.pid) - cpu0
                report_own_cpu = _cpu_seconds(os.getpid()) - own0
                stop.set()
                await sampler
                assert report.figures.trades == n, report.figures.trades
                # the same stream read and discarded: the directory's share of the time (and
                # the reader's own CPU: 0.02 s per 100,000, so the reader is not what is timed)
                sync = grpc.insecure_channel(f"127.0.0.1:{port}")
                cpu0, own0 = _cpu_seconds(directory.pid), _cpu_seconds(os.getpid())
                t0 = time.perf_counter()
                streamed = await asyncio.to_thread(lambda: sum(
                    len(batch.columns.trade_ids)
                    for batch in DirectoryServiceStub(sync).StreamTrades(
                        dapi.StreamTradesRequest(client_id=client.id), metadata=agent)))
                stream_seconds = time.perf_counter() - t0
                stream_cpu = _cpu_seconds(directory.pid) - cpu0
                stream_own_cpu = _cpu_seconds(os.getpid()) - own0
                sync.close()
                assert streamed == n
                directory_peak = _peak_rss_mib(directory.pid)
        finally:
            await remote.stop(grace=1)
            directory.terminate()
            try:
                directory.wait(timeout=30)
            except subprocess.TimeoutExpired:
                directory.kill()
                directory.wait()
            nats_server.stop()
    return {"seconds": seconds, "import_seconds": import_seconds,
            "stream_seconds": stream_seconds, "directory_rss_start_mib": rss_start,
            "import_cpu": import_cpu, "report_cpu": report_cpu,
            "report_own_cpu": report_own_cpu, "stream_cpu": stream_cpu,
            "stream_own_cpu": stream_own_cpu,
            "directory_import_peak_mib": import_peak, "directory_peak_mib": directory_peak,
            "rss_growth_mib": peak[0] - rss_before, "rss_peak_mib": peak[0]}


async def _pg_database(url: str) -> str:
    """A fresh database on the server of url (dropped by _drop_pg_database)."""
    import uuid

    import asyncpg

    name = f"bench_report_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.rpartition("/")[0] + "/" + name


async def _drop_pg_database(url: str, name: str) -> None:
    """Drop database name, connected to url's (another) database on the same server."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def bench_postgres(n: int, url: str) -> dict[str, float]:
    database = await _pg_database(url)
    try:
        return await bench_end_to_end(n, database)
    finally:
        await _drop_pg_database(url, database.rpartition("/")[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="history sizes, one table row set each (default 100,000 and "
                             "1,000,000)")
    parser.add_argument("--skip-e2e", action="store_true", help="analysis only")
    parser.add_argument("--sqlite-only", action="store_true",
                        help="no PostgreSQL rows even when BRANCH_TEST_POSTGRES_URL is set")
    args = parser.parse_args(argv)
    pg = "" if args.sqlite_only else os.environ.get("BRANCH_TEST_POSTGRES_URL", "")
    print("### Remote: trade import, stream and trading-record report\n")
    print(f"Python {sys.version.split()[0]}, one machine; load average at start "
          f"{os.getloadavg()[0]:.1f}.\n")
    print("| step | wall time | directory CPU | memory |")
    print("|---|---:|---:|---|", flush=True)

    def row(step: str, wall: str, cpu: str, memory: str) -> None:
        print(f"| {step} | {wall} | {cpu} | {memory} |", flush=True)

    for n in args.trades:
        a = bench_analysis(n)
        row(f"{n:,}: analysis + render (in-process, from batches of columns)",
            f"{a['seconds']:.2f} s", "",
            f"{a['peak_mib']:.1f} MiB traced peak (beyond the input batches)")
        if args.skip_e2e:
            continue
        stores = ["SQLite", "PostgreSQL"] if pg else ["SQLite"]
        for store in stores:
            e = asyncio.run(bench_postgres(n, pg) if store == "PostgreSQL"
                            else bench_end_to_end(n))
            row(f"{n:,}, {store}: ImportTrades of the history",
                f"{e['import_seconds']:.1f} s ({n / e['import_seconds']:,.0f}/s)",
                f"{e['import_cpu']:.1f} s",
                f"directory peak RSS {e['directory_import_peak_mib']:.0f} MiB "
                f"(at start {e['directory_rss_start_mib']:.0f} MiB)")
            row(f"{n:,}, {store}: CreateReport RPC (stream + analysis + store)",
                f"{e['seconds']:.2f} s",
                f"{e['report_cpu']:.2f} s + {e['report_own_cpu']:.2f} s in remote",
                f"+{e['rss_growth_mib']:.0f} MiB RSS in the remote process during "
                f"the call (peak {e['rss_peak_mib']:.0f} MiB)")
            row(f"{n:,}, {store}: StreamTrades alone (read and discarded)",
                f"{e['stream_seconds']:.2f} s ({n / e['stream_seconds']:,.0f}/s)",
                f"{e['stream_cpu']:.2f} s + {e['stream_own_cpu']:.2f} s in the reader",
                f"directory peak RSS {e['directory_peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()

"""Benchmark: the trading-record report of a client with 100,000 trades.

Two measurements:
  * analysis: folding 100,000 trades (FIFO lots, per-ticker figures) and rendering the
    Markdown and HTML documents, in-process; time, and peak traced memory (tracemalloc);
  * end to end: CreateReport against a directory in its own process and the remote service
    in this one (SQLite, real NATS); remote streams the trades from the directory over gRPC.
    Wall time of the call, and this (remote) process's peak RSS growth during it.

Run: .venv/bin/python bench/remote_report.py [--trades N] [--skip-e2e]
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
from decimal import Decimal
from pathlib import Path

from branch.directory.v1 import client_pb2, holding_pb2
from branch.directory.v1 import directory_service_pb2 as dapi

TICKERS = [f"{600000 + i}" for i in range(60)]
SEED = 42


def synthetic_trades(client_id: str, n: int) -> Iterator[holding_pb2.Trade]:
    """n trades in time order over about four years; sells never exceed the position."""
    rng = random.Random(SEED)
    price = {t: Decimal(rng.randint(500, 20000)) / 100 for t in TICKERS}
    held = dict.fromkeys(TICKERS, 0)
    when = datetime(2022, 1, 3, 1, 30, tzinfo=UTC)
    step = timedelta(days=4 * 365) / n
    for i in range(n):
        ticker = rng.choice(TICKERS)
        p = max(Decimal("0.5"), price[ticker] * Decimal(1 + rng.uniform(-0.03, 0.03)))
        price[ticker] = p = p.quantize(Decimal("0.01"))
        if held[ticker] >= 100 and rng.random() < 0.48:
            qty = rng.randint(1, held[ticker] // 100) * 100
            side = holding_pb2.SIDE_SELL
            held[ticker] -= qty
        else:
            qty = rng.randint(1, 20) * 100
            side = holding_pb2.SIDE_BUY
            held[ticker] += qty
        fee = max(Decimal(5), (p * qty * Decimal("0.00025")).quantize(Decimal("0.01")))
        when += step
        t = holding_pb2.Trade(trade_id=f"b-{i:07d}", client_id=client_id, ticker=ticker,
                              side=side, quantity=qty, price=str(p), fee=str(fee))
        t.trade_time.FromDatetime(when)
        yield t


def holdings_for(trades: list[holding_pb2.Trade]) -> list[holding_pb2.Holding]:
    qty: dict[str, int] = {}
    last: dict[str, str] = {}
    for t in trades:
        qty[t.ticker] = qty.get(t.ticker, 0) + (t.quantity if t.side == 1 else -t.quantity)
        last[t.ticker] = t.price
    return [holding_pb2.Holding(ticker=k, quantity=v, market_price=last[k],
                                risk_level=client_pb2.RiskLevel.ValueType((int(k) % 5) + 1))
            for k, v in sorted(qty.items()) if v > 0]


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


def bench_analysis(n: int) -> dict[str, float]:
    from services.remote import render
    from services.remote.analysis import Analyzer

    trades = list(synthetic_trades("c-bench", n))
    holdings = holdings_for(trades)
    client = client_pb2.Client(account_no="BENCH", risk_tolerance=client_pb2.RISK_TOLERANCE_C3)

    def run() -> None:
        a = Analyzer(0, 2**40)
        for t in trades:
            a.add_trade(t)
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


async def bench_end_to_end(n: int) -> dict[str, float]:
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
                holdings = holdings_for(list(synthetic_trades(client.id, n)))

                async def records() -> AsyncIterator[dapi.ImportTradesRequest]:
                    for t in TICKERS:
                        yield dapi.ImportTradesRequest(security=holding_pb2.Security(
                            ticker=t, name=f"S{t}",
                            risk_level=client_pb2.RiskLevel.ValueType((int(t) % 5) + 1)))
                    trades = list(synthetic_trades(client.id, n))
                    for start in range(0, len(trades), 500):
                        yield dapi.ImportTradesRequest(batch=[
                            dapi.ImportRecord(trade=tr) for tr in trades[start:start + 500]])
                    for h in holdings:
                        yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
                            client_id=client.id, ticker=h.ticker, quantity=h.quantity,
                            cost_price=h.market_price, market_price=h.market_price,
                            as_of="2025-12-31"))

                t0 = time.perf_counter()
                imported = await dstub.ImportTrades(records(), metadata=admin, timeout=1800)
                import_seconds = time.perf_counter() - t0
                assert imported.rejected == 0, imported.rejections[:3]
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
                t0 = time.perf_counter()
                report = await rstub.CreateReport(api.CreateReportRequest(
                    client_id=client.id, period_start="2022-01-01",
                    period_end=today.isoformat()), metadata=agent, timeout=600)
                seconds = time.perf_counter() - t0
                stop.set()
                await sampler
                assert report.figures.trades == n, report.figures.trades
                # the same stream read and discarded: the directory's share of the time
                sync = grpc.insecure_channel(f"127.0.0.1:{port}")
                t0 = time.perf_counter()
                streamed = await asyncio.to_thread(lambda: sum(
                    len(batch.trades) for batch in DirectoryServiceStub(sync).StreamTrades(
                        dapi.StreamTradesRequest(client_id=client.id), metadata=agent)))
                stream_seconds = time.perf_counter() - t0
                sync.close()
                assert streamed == n
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
            "stream_seconds": stream_seconds,
            "rss_growth_mib": peak[0] - rss_before, "rss_peak_mib": peak[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--skip-e2e", action="store_true", help="analysis only")
    args = parser.parse_args(argv)
    a = bench_analysis(args.trades)
    rows = [
        ("analysis + render (in-process)", f"{a['seconds']:.2f} s",
         f"{a['peak_mib']:.1f} MiB traced peak (beyond the input trades)"),
    ]
    if not args.skip_e2e:
        e = asyncio.run(bench_end_to_end(args.trades))
        rows.append(("CreateReport RPC (directory stream + analysis + store)",
                     f"{e['seconds']:.2f} s",
                     f"+{e['rss_growth_mib']:.0f} MiB RSS in the remote process during "
                     f"the call (peak {e['rss_peak_mib']:.0f} MiB)"))
        rows.append(("of which: the directory's StreamTrades alone (read and discarded)",
                     f"{e['stream_seconds']:.2f} s", ""))
        rows.append(("(setup, not the report) ImportTrades of the history",
                     f"{e['import_seconds']:.1f} s", ""))
    print(f"### Remote: trading-record report, {args.trades:,} trades\n")
    print(f"Python {sys.version.split()[0]}, SQLite, one machine.\n")
    print("| step | time | memory |")
    print("|---|---:|---|")
    for step, t, m in rows:
        print(f"| {step} | {t} | {m} |")


if __name__ == "__main__":
    main()

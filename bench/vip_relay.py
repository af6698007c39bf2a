"""Benchmark: time from a note's publication until relay tasks exist for 10,000 matched key
clients.

Starts a real nats-server, the directory and the vip service (SQLite by default; PostgreSQL
with --postgres URL), seeds N key clients holding one ticker, then publishes
branch.research.note.published and measures until (a) the relay tasks are committed in vip's
database and (b) vip's branch.vip.relay.planned event arrives on NATS. The path measured is
the real one: JetStream delivery, the consumer's transaction recording a pending plan, the
relay planner woken on its commit paging FindClientsByTickers from the directory over gRPC
(outside any vip write transaction), then suitability per client, a bulk insert in one short
transaction, and the outbox relay.

Seeding writes the directory's and vip's tables directly (creating 10,000 clients through the
API is not what is measured here).

    .venv/bin/python bench/vip_relay.py [--clients 10000] [--runs 3] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from branch.directory.v1 import client_pb2  # noqa: E402
from branch.research.v1 import events_pb2 as research_events  # noqa: E402
from branch.research.v1 import note_enums_pb2 as notes  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402
from sqlalchemy import func, insert  # noqa: E402
from sqlmodel import select  # noqa: E402

from services.common.ids import new_id  # noqa: E402
from services.common.logs import configure_logging  # noqa: E402
from services.common.nats_link import EmbeddedNats  # noqa: E402
from services.common.server import ServiceRunner  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.directory.models import Client, Holding, Security  # noqa: E402
from services.directory.server import SPEC as DIRECTORY  # noqa: E402
from services.vip.models import Relay, RosterEntry  # noqa: E402
from services.vip.server import SPEC as VIP  # noqa: E402

TICKER = "600519"
# the longest one run may take before the bench gives up (it never waits without end)
RUN_TIMEOUT = 300
BROKERS = 50


async def seed(directory: ServiceRunner, vip: ServiceRunner, clients: int,
               withheld_every: int) -> None:
    now = datetime.now(UTC)
    today = now.date()
    brokers = [new_id() for _ in range(BROKERS)]
    rows, holdings, roster = [], [], []
    for i in range(clients):
        cid = new_id()
        low = withheld_every and i % withheld_every == 0
        tolerance = 1 if low else 4
        broker = brokers[i % BROKERS]
        rows.append(dict(id=cid, account_no=f"B{i:08d}", display_name=f"Client {i}", phone="",
                         channel=client_pb2.CHANNEL_REMOTE, tier=client_pb2.TIER_KEY,
                         risk_tolerance=tolerance, risk_assessed_on=date(2026, 1, 5),
                         operating_style=0, client_manager_id="", broker_id=broker,
                         commission_rate="0.0005", opened_on=date(2020, 1, 1),
                         status=client_pb2.CLIENT_STATUS_ACTIVE, created_at=now,
                         updated_at=now))
        holdings.append(dict(client_id=cid, ticker=TICKER, quantity=100, cost_price="10.00",
                             market_price="", as_of=today, updated_at=now))
        roster.append(dict(client_id=cid, broker_id=broker, backup_broker_id="",
                           risk_tolerance=tolerance, risk_assessed_on=date(2026, 1, 5),
                           status=1, leave_reason="", joined_at=now, updated_at=now))
    async with directory.db.transaction() as s:
        await s.exec(insert(Security), params=[dict(ticker=TICKER, name="Moutai",
                                                    risk_level=3, last_price="")])
        for i in range(0, clients, 2000):
            await s.exec(insert(Client), params=rows[i:i + 2000])
            await s.exec(insert(Holding), params=holdings[i:i + 2000])
    async with vip.db.transaction() as s:
        for i in range(0, clients, 2000):
            await s.exec(insert(RosterEntry), params=roster[i:i + 2000])


async def relay_count(vip: ServiceRunner, note_id: str) -> int:
    async with vip.db.read() as s:
        return int((await s.exec(select(func.count()).select_from(Relay)
                                 .where(Relay.note_id == note_id))).one())


async def one_run(nats_url: str, vip: ServiceRunner, kind: int, clients: int) -> dict[str, Any]:
    note_id = new_id()
    nc = await nats.connect(nats_url)
    planned = asyncio.get_running_loop().create_future()

    async def on_planned(msg: Msg) -> None:
        if msg.headers and msg.headers.get("ce-subject") == note_id and not planned.done():
            planned.set_result(time.perf_counter())

    await nc.subscribe("branch.vip.relay.planned", cb=on_planned)
    event = research_events.NotePublished(
        note_id=note_id, revision=1, title="Bench note", kind=notes.NoteKind.ValueType(kind),
        tickers=[TICKER] if kind != notes.NOTE_KIND_MARKET else [],
        risk_level=client_pb2.RISK_LEVEL_R3, audience=notes.AUDIENCE_KEY_CLIENTS)
    event_id = new_id()
    t0 = time.perf_counter()
    await nc.jetstream().publish("branch.research.note.published", event.SerializeToString(),
                                 headers={"Nats-Msg-Id": event_id, "ce-specversion": "1.0",
                                          "ce-id": event_id,
                                          "ce-type": "branch.research.note.published",
                                          "ce-source": "/branch/bench",
                                          "ce-time": datetime.now(UTC).isoformat()})
    committed = None
    deadline = t0 + RUN_TIMEOUT
    while committed is None:
        if await relay_count(vip, note_id) >= clients:
            committed = time.perf_counter()
            break
        if time.perf_counter() > deadline:
            await nc.close()
            raise TimeoutError(f"relay tasks not all committed within {RUN_TIMEOUT} s")
        await asyncio.sleep(0.01)
    try:
        seen = await asyncio.wait_for(planned, timeout=RUN_TIMEOUT)
    finally:
        await nc.close()
    return {"committed": committed - t0, "event": seen - t0,
            "tasks": await relay_count(vip, note_id)}


async def bench(clients: int, runs: int, database_url: str,
                withheld_every: int) -> list[dict[str, Any]]:
    configure_logging("error")
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp) / "nats")
        server.start()
        try:
            settings = Settings(data_dir=Path(tmp), nats_url=server.url,
                                database_url=database_url,
                                outbox_poll_seconds=0.5)
            directory = ServiceRunner(DIRECTORY, settings, port=0)
            await directory.start()
            vsettings = settings.model_copy(update={"directory_addr":
                                                    f"127.0.0.1:{directory.port}"})
            vip = ServiceRunner(VIP, vsettings, port=0)
            await vip.start()
            try:
                t = time.perf_counter()
                await seed(directory, vip, clients, withheld_every)
                print(f"seeded {clients} key clients in {time.perf_counter() - t:.1f} s",
                      file=sys.stderr)
                results = []
                for label, kind in (("stock note, matched by holdings", notes.NOTE_KIND_STOCK),
                                    ("market note, every key client", notes.NOTE_KIND_MARKET)):
                    timings = [await one_run(server.url, vip, kind, clients)
                               for _ in range(runs)]
                    results.append({"scenario": label, "runs": timings})
                return results
            finally:
                await vip.stop(grace=1)
                await directory.stop(grace=1)
        finally:
            server.stop()


def table(results: list[dict[str, Any]], clients: int, backend: str, withheld_every: int) -> str:
    lines = [
        f"### vip relay: note published -> relay tasks for {clients:,} key clients "
        f"({backend})",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
        "(a shared machine: figures move with its load).",
        "",
        "| scenario | matched key clients | relay tasks | withheld (counted, kept) | runs | "
        "until all committed (median / min / max, s) | until relay.planned seen (median, s) | "
        "clients/s |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    withheld = clients // withheld_every + (1 if clients % withheld_every else 0) \
        if withheld_every else 0
    for r in results:
        c = [x["committed"] for x in r["runs"]]
        e = [x["event"] for x in r["runs"]]
        med = statistics.median(c)
        lines.append(
            f"| {r['scenario']} | {clients:,} | {r['runs'][0]['tasks'] - withheld:,} | "
            f"{withheld:,} | "
            f"{len(c)} | {med:.2f} / {min(c):.2f} / {max(c):.2f} | {statistics.median(e):.2f} | "
            f"{clients / med:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default="",
                        help="PostgreSQL URL (postgresql+asyncpg://...); fresh databases are "
                             "created on it")
    parser.add_argument("--withheld-every", type=int, default=0,
                        help="every Nth client has a low tolerance and is withheld (0: none)")
    args = parser.parse_args()
    database_url, backend = "", "SQLite"
    if args.postgres:
        os.environ["BRANCH_TEST_POSTGRES_URL"] = args.postgres
        from tests.harness import create_postgres_databases

        database_url = asyncio.run(create_postgres_databases())
        backend = "PostgreSQL"
    results = asyncio.run(bench(args.clients, args.runs, database_url, args.withheld_every))
    print(table(results, args.clients, backend, args.withheld_every))


if __name__ == "__main__":
    main()

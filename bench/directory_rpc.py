"""Benchmark: directory RPCs against a bare grpc.aio echo server, the event hop, and the two
ways of keeping database I/O off the event loop.

Each server runs in its own process (as deployed); the load comes from this process with
CONCURRENCY calls in flight on one channel. All figures come from one run on one machine,
so the ratios are what to compare.

Run: ./dev bench   (or .venv/bin/python bench/directory_rpc.py [--calls N])
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.factories

from branch.directory.v1 import directory_service_pb2 as api  # noqa: E402
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub  # noqa: E402

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

from services.common.keys import jwks, key_from_seed  # noqa: E402

CONCURRENCY = 16
BENCH_KEY = key_from_seed("bench signing key")
TRUSTED = jwks([BENCH_KEY.public_jwk()])
ECHO_METHOD = "/bench.Echo/Echo"
Metadata = tuple[tuple[str, str | bytes], ...]


# ---- servers, each in a child process ---------------------------------------------------

def _join(proc: mp.process.BaseProcess, timeout: float = 60) -> None:
    """Wait for a child to exit, at most timeout seconds; then end it, so the bench always
    ends by itself."""
    proc.join(timeout)
    if proc.is_alive():
        print(f"{proc.name} did not exit within {timeout:.0f} s; terminating it", file=sys.stderr)
        proc.terminate()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _echo_server(port_q: Queue[int], stop: ProcessEvent) -> None:
    async def serve() -> None:
        async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return request

        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_q.put(port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await server.stop(0)

    asyncio.run(serve())


def _directory_server(data_dir: str, nats_url: str, port_q: Queue[int],
                      stop: ProcessEvent, sync_reads: bool = False, database_url: str = "") -> None:
    from services.common.logs import configure_logging
    from services.common.server import ServiceRunner
    from services.common.settings import Settings
    from services.directory.server import SPEC

    # info, as deployed (one JSON line per call), to a file as the embedded suite does
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    configure_logging("info", Path(data_dir) / "directory.log")
    if sync_reads:
        _use_sync_reads(Path(data_dir) / "directory.db")

    async def serve() -> None:
        settings = Settings(data_dir=Path(data_dir), nats_url=nats_url, trusted_keys=TRUSTED,
                            database_url=database_url)
        runner = ServiceRunner(SPEC, settings, port=0)
        await runner.start()
        port_q.put(runner.port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.stop(grace=1)

    asyncio.run(serve())


def _use_sync_reads(path: Path) -> None:
    """Bench only: GetClient through a sync session in a bounded thread pool, the
    alternative the async engine is measured against at the RPC level."""
    from branch.directory.v1 import client_pb2
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from services.common.auth import Principal
    from services.common.errors import NotFound
    from services.directory import convert, service
    from services.directory.models import Client

    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False},
                           pool_size=8)
    pool = ThreadPoolExecutor(max_workers=8)

    async def get_client(self: service.Directory, principal: Principal,
                         client_id: str) -> client_pb2.Client:
        def work() -> client_pb2.Client:
            with Session(engine) as session:
                row = session.get(Client, client_id)
                if row is None:
                    raise NotFound(f"client {client_id} not found")
                service.ensure_scope(principal, row)
                return convert.client_to_proto(row, self.today())

        return await asyncio.get_running_loop().run_in_executor(pool, work)

    # deliberately replaces the method (the variant measured); mypy refuses assigning to a
    # method on principle
    service.Directory.get_client = get_client  # type: ignore[method-assign]


def _hop_consumer(data_dir: str, nats_url: str, expect: int,
                  out_q: Queue[list[float]], ready: ProcessEvent) -> None:
    """A durable consumer in its own process; reports commit-to-handled latencies."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    from services.common import migrations
    from services.common.clock import SystemClock
    from services.common.consumer import Consumer, Subscription
    from services.common.db import Database
    from services.common.events import Event
    from services.common.logs import configure_logging
    from services.common.nats_link import NatsLink
    from services.directory.server import SPEC

    configure_logging("error")

    async def consume() -> None:
        db = Database(f"sqlite+aiosqlite:///{data_dir}/hop.db", service="hop")
        await migrations.upgrade(db, SPEC.migrations)
        link = NatsLink(nats_url, "hop")
        await link.connect(attempts=5)
        latencies: list[float] = []
        done = asyncio.Event()

        async def handle(session: AsyncSession, event: Event) -> None:
            # ce-time is stamped inside CreateClient's transaction, just before its commit
            latencies.append((datetime.now(UTC) - event.time).total_seconds())
            if len(latencies) >= expect:
                done.set()

        consumer = Consumer(db, link, SystemClock(), Subscription(
            "bench", ["branch.directory.client.created"], handle))
        await consumer.ensure()
        task = asyncio.create_task(consumer.run())
        ready.set()
        try:
            await asyncio.wait_for(done.wait(), timeout=120)
        finally:
            out_q.put(latencies)
            # the subscription is released before the connection closes (bounded both)
            await consumer.close(task)
            await link.close()
            await db.dispose()

    asyncio.run(consume())


# ---- load -------------------------------------------------------------------------------

async def _load(call: Callable[[int], Awaitable[object]], n: int,
                concurrency: int = CONCURRENCY) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def _row(name: str, n: int, elapsed: float, lat: list[float], base: float | None,
         cpu: float | None = None, cpu_base: float | None = None) -> list[str]:
    """calls/s, p50, p99, ratio to the baseline's rate; with cpu (server CPU seconds over the
    n calls): CPU ms a call and the baseline's CPU a call over this one's."""
    rate = n / elapsed
    q = statistics.quantiles(lat, n=100)
    row = [name, f"{rate:,.0f}", f"{q[49] * 1000:.2f}", f"{q[98] * 1000:.2f}",
           f"{rate / base:.2f}" if base else "1.00"]
    if cpu is not None:
        row += [f"{cpu / n * 1000:.3f}", f"{cpu_base / cpu:.2f}" if cpu_base else "1.00"]
    return row


SINGLE = 1  # one call in flight: what a person at the console feels


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(name: str, call: Callable[[int], Awaitable[object]], calls: int,
                   base: dict[int, tuple[float, float]], warm: int,
                   pid: int | None = None) -> list[list[str]]:
    """Two rows: CONCURRENCY calls in flight, then one; ratios to the echo at the same
    concurrency (base: rate and server CPU seconds a call). Without a base (the echo
    itself) the figures become the base. The server's CPU a call is much less moved by other
    work on a shared machine than the rates are."""
    rows = []
    for concurrency, n in ((CONCURRENCY, calls), (SINGLE, _single_calls(calls))):
        await _load(call, min(warm, n), concurrency)
        cpu0 = _cpu_seconds(pid)
        elapsed, lat = await _load(call, n, concurrency)
        cpu = _cpu_seconds(pid) - cpu0
        label = name if concurrency == CONCURRENCY else f"{name}, 1 in flight"
        rate_base, cpu_base = base.get(concurrency, (0.0, 0.0))
        rows.append(_row(label, n, elapsed, lat, rate_base, cpu,
                         cpu_base * n if cpu_base else None))
        base.setdefault(concurrency, (n / elapsed, cpu / n))
    return rows


def _single_calls(calls: int) -> int:
    return max(20, min(calls, 1000))


async def _directory_rows(stub: DirectoryServiceAsyncStub, md: Metadata, calls: int,
                          base: dict[int, tuple[float, float]],
                          store: str, profile: Path | None, pid: int | None) -> list[list[str]]:
    """CreateClient, then GetClient of the clients made, at 16 and at 1 in flight."""
    from tests.directory.factories import client_msg

    ids: list[str] = []

    async def create(i: int) -> None:
        c = await stub.CreateClient(api.CreateClientRequest(client=client_msg()), metadata=md)
        ids.append(c.id)

    rng = random.Random(1)

    async def get(i: int) -> None:
        await stub.GetClient(api.GetClientRequest(id=rng.choice(ids)), metadata=md)

    rows = []
    with _profiled(profile, pid, f"create_{store}"):
        rows += await _measure(f"directory CreateClient ({store})", create, calls, base, 300,
                               pid)
    with _profiled(profile, pid, f"get_{store}"):
        rows += await _measure(f"directory GetClient ({store})", get, calls, base, 500, pid)
    return rows


@contextlib.contextmanager
def _profiled(out: Path | None, pid: int | None, name: str) -> Iterator[None]:
    """With --profile DIR: py-spy samples the server process (by pid) while the block runs,
    writing collapsed stacks to DIR/name.txt and a summary of the top frames to
    DIR/name.top.txt."""
    if out is None or pid is None:
        yield
        return
    import shutil
    import signal
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = out / f"{name}.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                             "--nonblocking", "-o", str(raw)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if raw.exists():
            (out / f"{name}.top.txt").write_text(top_frames(raw.read_text()))


# Where a call's CPU goes, for the --profile summary: each sampled stack counts once, for the
# first of these its frames match (so a log line written inside the audit block counts as
# audit). Idle stacks (waiting in select, or a worker thread waiting for work) are left out.
PROFILE_PARTS = [
    ("token verification (PyJWT EdDSA)", r"TokenVerifier\.verify"),
    ("audit record in its own transaction", r"ServiceInterceptor\._end.*Database\.transaction"),
    ("outbox relay (read, publish, mark sent)", r"OutboxRelay"),
    ("rpc log line (structlog JSON)", r"structlog/"),
    ("SQLAlchemy and the drivers (session, ORM, Core; aiosqlite, asyncpg, sqlite3)",
     r"sqlalchemy/|aiosqlite|asyncpg|sqlmodel|Database\.|_connection_worker_thread"),
    ("handler: validation, convert, protobuf", r"DirectoryServicer\.|Directory\.|idempotency"),
    ("OpenTelemetry server span", r"OpenTelemetry|opentelemetry"),
    ("our interceptor: access table, metrics, context", r"ServiceInterceptor|prometheus"),
    ("grpc core, event loop, thread hand-offs (C code: not sampled inside)", r"."),
]
IDLE = ("EpollSelector.select", "threading.py:327", "(queue.py:")


def top_frames(collapsed: str, limit: int = 25) -> str:
    """From py-spy's collapsed stacks: the share of non-idle samples in each PROFILE_PARTS
    part, then the frames with the most samples below them (inclusive) and of their own
    (self)."""
    import re

    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    parts = {name: 0 for name, _ in PROFILE_PARTS}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or any(i in stack for i in IDLE):
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for name, pattern in PROFILE_PARTS:
            if re.search(pattern, stack):
                parts[name] += n
                break
    total = total or 1
    lines = [f"{total} non-idle samples", "", "| part | % |", "|---|---|"]
    for name, n in sorted(parts.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {100 * n / total:.0f} |")
    lines += ["", "inclusive %  frame"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:limit]:
        lines.append(f"{100 * n / total:6.1f}  {frame}")
    lines += ["", "self %  frame"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:limit]:
        lines.append(f"{100 * n / total:6.1f}  {frame}")
    return "\n".join(lines) + "\n"


async def bench_rpc(calls: int, data_dir: Path, nats_url: str, hop_n: int = 300,
                    only_calls: bool = False, profile: Path | None = None) -> list[list[str]]:
    from services.common.auth import TokenSigner
    from tests.directory.factories import client_msg

    ctx = mp.get_context("spawn")
    rows: list[list[str]] = []
    base: dict[int, tuple[float, float]] = {}
    loop = asyncio.get_running_loop()
    stop = ctx.Event()
    q: Queue[int] = ctx.Queue()
    echo = ctx.Process(target=_echo_server, args=(q, stop))
    echo.start()
    port = q.get(timeout=30)
    payload = bytes(400)  # about the size of a serialised Client
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(ECHO_METHOD)
        rows += await _measure("echo (bare grpc.aio, baseline)", lambda i: call(payload), calls,
                               base, 500, echo.pid)
    stop.set()
    _join(echo)

    stop = ctx.Event()
    server = ctx.Process(target=_directory_server, args=(str(data_dir), nats_url, q, stop))
    server.start()
    port = q.get(timeout=60)
    token = TokenSigner(BENCH_KEY).issue("bench-admin", ["admin"], datetime.now(UTC),
                                      timedelta(hours=1))
    md: Metadata = (("authorization", f"Bearer {token}"),)
    hop_row: list[str] | None = None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = DirectoryServiceStub(ch)

        if not only_calls:
            # the event hop first, on an empty stream: CreateClient commit -> durable consumer
            # in another process, one event at a time (a trickle, not a burst)
            out: Queue[list[float]] = ctx.Queue()
            ready = ctx.Event()
            consumer = ctx.Process(target=_hop_consumer,
                                   args=(str(data_dir), nats_url, hop_n, out, ready))
            consumer.start()
            await loop.run_in_executor(None, ready.wait, 60)
            for _ in range(hop_n):
                await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                        metadata=md)
                await asyncio.sleep(0.005)
            hops = await loop.run_in_executor(None, out.get, True, 120)
            _join(consumer)
            q_hop = statistics.quantiles(hops, n=100)
            hop_row = ["event hop: CreateClient commit → durable consumer in another process",
                       f"({hop_n} events)", f"{q_hop[49] * 1000:.2f}",
                       f"{q_hop[98] * 1000:.2f}", "—"]

        rows += await _directory_rows(stub, md, calls, base, "SQLite", profile, server.pid)
    stop.set()
    _join(server)

    if not only_calls:
        # the same GetClient with its read on a sync session in a thread pool (same data)
        stop = ctx.Event()
        server = ctx.Process(target=_directory_server,
                             args=(str(data_dir), nats_url, q, stop, True))
        server.start()
        port = q.get(timeout=60)
        ids = await _client_ids(data_dir / "directory.db")
        rng = random.Random(1)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = DirectoryServiceStub(ch)

            async def get(i: int) -> None:
                await stub.GetClient(api.GetClientRequest(id=rng.choice(ids)), metadata=md)

            await _load(get, min(500, calls))
            elapsed, lat = await _load(get, calls)
            rows.append(_row("directory GetClient, read via sync session in thread pool "
                             "(SQLite)", calls, elapsed, lat, base[CONCURRENCY][0]))
        stop.set()
        _join(server)
    if hop_row is not None:
        rows.append(hop_row)
    pg = os.environ.get("BRANCH_TEST_POSTGRES_URL", "")
    if not pg:
        return rows

    # the production storage: PostgreSQL through asyncpg
    url = await _pg_database(pg)
    try:
        stop = ctx.Event()
        server = ctx.Process(target=_directory_server,
                             args=(str(data_dir / "pg"), nats_url, q, stop, False, url))
        server.start()
        port = q.get(timeout=60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            rows += await _directory_rows(DirectoryServiceStub(ch), md, calls, base,
                                          "PostgreSQL", profile, server.pid)
        stop.set()
        _join(server)
    finally:
        await _drop_pg_database(url)
    return rows


async def _client_ids(path: Path) -> list[str]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM directory_client")]


async def bench_db(calls: int, async_url: str, sync_url: str, label: str) -> list[list[str]]:
    """The same primary-key read through the async engine and through sync sessions in a
    bounded thread pool, CONCURRENCY at a time."""
    from sqlalchemy import create_engine
    from sqlmodel import Session

    from services.common import migrations
    from services.common.db import Database
    from services.directory.models import Client
    from services.directory.server import SPEC

    db = Database(async_url, service="directory")
    await migrations.upgrade(db, SPEC.migrations)
    now = datetime.now(UTC)
    ids = [f"c{i:06d}" for i in range(2000)]
    async with db.transaction() as session:
        for i, cid in enumerate(ids):
            session.add(Client(id=cid, account_no=f"B{i}", display_name="x", channel=1, tier=1,
                               risk_tolerance=3, risk_assessed_on=now.date(),
                               commission_rate="0.0003", opened_on=now.date(), status=1,
                               created_at=now, updated_at=now))
    rng = random.Random(2)

    async def async_get(i: int) -> None:
        async with db.read() as session:
            await session.get(Client, rng.choice(ids))

    await _load(async_get, min(300, calls))
    a_elapsed, a_lat = await _load(async_get, calls)
    await db.dispose()

    sqlite = sync_url.startswith("sqlite")
    kwargs = {"connect_args": {"check_same_thread": False}} if sqlite else {}
    engine = create_engine(sync_url, pool_size=8, **kwargs)
    pool = ThreadPoolExecutor(max_workers=8)
    loop = asyncio.get_running_loop()

    def sync_get() -> None:
        with Session(engine) as session:
            session.get(Client, rng.choice(ids))

    async def threaded_get(i: int) -> None:
        await loop.run_in_executor(pool, sync_get)

    await _load(threaded_get, min(300, calls))
    s_elapsed, s_lat = await _load(threaded_get, calls)
    pool.shutdown()
    engine.dispose()
    a_rate = calls / a_elapsed
    return [
        _row(f"{label}: async engine", calls, a_elapsed, a_lat, None),
        _row(f"{label}: sync session in 8-thread pool", calls, s_elapsed, s_lat, a_rate),
    ]


async def _drop_pg_database(url: str) -> None:
    import asyncpg

    base, _, name = url.rpartition("/")
    admin = base.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _pg_database(url: str) -> str:
    import uuid

    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return url.rpartition("/")[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--events", type=int, default=300, help="events in the event hop")
    parser.add_argument("--only-calls", action="store_true",
                        help="only echo, CreateClient and GetClient (no event hop, no sync-read "
                             "server, no database read comparison)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="sample the directory server with py-spy during each directory "
                             "row; collapsed stacks and top frames go to DIR")
    args = parser.parse_args()
    from services.common.nats_link import EmbeddedNats

    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    db_rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        nats = EmbeddedNats(Path(tmp) / "nats")
        nats.start()
        try:
            rpc_rows = asyncio.run(bench_rpc(args.calls, Path(tmp), nats.url, args.events,
                                             args.only_calls, args.profile))
        finally:
            nats.stop()
        if not args.only_calls:
            path = Path(tmp) / "dbbench.db"
            db_rows = asyncio.run(bench_db(args.calls, f"sqlite+aiosqlite:///{path}",
                                           f"sqlite:///{path}", "SQLite (aiosqlite / sqlite3)"))
            pg = os.environ.get("BRANCH_TEST_POSTGRES_URL", "")
            if pg:
                url = asyncio.run(_pg_database(pg))
                try:
                    db_rows += asyncio.run(bench_db(args.calls, url,
                                                    url.replace("+asyncpg", "+psycopg"),
                                                    "PostgreSQL (asyncpg / psycopg)"))
                finally:
                    asyncio.run(_drop_pg_database(url))
            else:
                print("PostgreSQL rows skipped: BRANCH_TEST_POSTGRES_URL not set")
    print(f"\nconcurrency {CONCURRENCY} ({args.calls} calls) and 1 "
          f"({_single_calls(args.calls)} calls); ratios to the echo at the same concurrency\n")
    print("| what | calls/s | p50 ms | p99 ms | ratio to baseline | server CPU ms a call "
          "| CPU ratio (baseline's CPU a call / this) |")
    print("|---|---|---|---|---|---|---|")
    for row in rpc_rows:
        print("| " + " | ".join(row + ["—"] * (7 - len(row))) + " |")
    if db_rows:
        print("\n| database read path | reads/s | p50 ms | p99 ms | ratio to async, same db |")
        print("|---|---|---|---|---|")
        for row in db_rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

"""Benchmark: SearchClients' query over N clients, by kind of query, with and without the
search index (SQLite FTS5 trigram; PostgreSQL pg_trgm when BRANCH_TEST_POSTGRES_URL is set).

The rule is called directly (services/directory/search.py: the SQL the RPC runs), one query at
a time, so the figures are the database's share of a search.

Run: ./dev bench   (or .venv/bin/python bench/directory_search.py [--clients N])
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from branch.directory.v1 import search_pb2 as spb  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from services.common import migrations  # noqa: E402
from services.common.auth import Principal  # noqa: E402
from services.common.db import Database  # noqa: E402
from services.directory import search  # noqa: E402
from services.directory.models import Client  # noqa: E402

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许"
            "韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程")
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国红梅玉兰志强海燕晓东"
ADMIN = Principal("bench", frozenset({"admin"}))
QUERIES = 200
VERSIONS = Path(__file__).resolve().parent.parent / "services/directory/migrations/versions"


def _rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        phone = f"1{rng.randint(3, 9)}{rng.randint(0, 999999999):09d}"
        out.append(dict(
            id=str(uuid.uuid4()), account_no=f"31{i:010d}", display_name=name,
            phone=f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", phone_normalized=phone,
            search_text=search.search_text(name), channel=1, tier=1, risk_tolerance=3,
            risk_assessed_on=date(2025, 6, 1), operating_style=0, client_manager_id="",
            broker_id="", commission_rate="0.00025", opened_on=date(2024, 1, 2), status=1,
            created_at=now, updated_at=now))
    return out


async def _time(db: Database, queries: list[str]) -> tuple[float, float]:
    took = []
    for q in queries:
        start = time.perf_counter()
        await search.search_clients(db, ADMIN, spb.SearchClientsRequest(query=q, page_size=20))
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1]


async def run(url: str, label: str, n: int) -> list[str]:
    db = Database(url, service="directory")
    await migrations.upgrade(db, VERSIONS)
    rng = random.Random(7)
    rows = _rows(n, rng)
    async with db.transaction() as session:
        for i in range(0, n, 2000):
            await session.exec(insert(Client), params=rows[i:i + 2000])
    sample = rng.sample(rows, QUERIES)
    kinds = {
        "pinyin initials (2-3 letters)": [r["search_text"].rsplit("|", 1)[1].split()[0]
                                          for r in sample],
        "full pinyin (5+ letters)": [r["search_text"].split("|")[1].split()[0] for r in sample],
        "name (2-3 characters)": [r["display_name"] for r in sample],
        "phone, typed with +86 and spaces": [r["phone"] for r in sample],
        "account number": [r["account_no"] for r in sample],
    }
    lines = []
    for kind, queries in kinds.items():
        p50, p99 = await _time(db, queries)
        lines.append(f"| {label} | {kind} | {p50:.2f} | {p99:.2f} |")
    # the same 5+ letter queries without the index: a LIKE over every row
    fts_min = search.FTS_MIN
    search.FTS_MIN = 10_000
    if db.engine.dialect.name == "postgresql":
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP INDEX ix_directory_client_search"))
    p50, p99 = await _time(db, kinds["full pinyin (5+ letters)"])
    search.FTS_MIN = fts_min
    lines.append(f"| {label} | full pinyin, no index (scan) | {p50:.2f} | {p99:.2f} |")
    await db.dispose()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    args = parser.parse_args()
    print(f"SearchClients over {args.clients:,} clients, {QUERIES} queries per row, "
          "page size 20\n")
    print("| database | query | p50 ms | p99 ms |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for line in await run(f"sqlite+aiosqlite:///{tmp}/d.db", "SQLite", args.clients):
            print(line)
    pg = os.environ.get("BRANCH_TEST_POSTGRES_URL", "")
    if pg:
        import asyncpg

        name = f"bench_search_{uuid.uuid4().hex[:8]}"
        base = pg.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(base)
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            for line in await run(pg.rpartition("/")[0] + f"/{name}", "PostgreSQL",
                                  args.clients):
                print(line)
        finally:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())

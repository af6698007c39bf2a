"""The demo branch's people and accounts: ~40 staff, 2,000 clients, holdings and a year of
trades, all made through the directory's public API (deterministic: one seed)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.protos import ts

if TYPE_CHECKING:
    from services.cli.demo import Demo

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉力鹏飞宇欣怡晨浩"
    "然子涵思远嘉俊博雅琳婷"
)
STAFF_PLAN = [
    ("supervisor", 2), ("client_manager", 8), ("consultant", 6), ("service_agent", 8),
    ("broker", 8), ("analyst", 5), ("compliance", 2), ("quality_inspector", 2),
]
ROLE_ENUM = {
    "client_manager": staff_pb2.ROLE_CLIENT_MANAGER, "consultant": staff_pb2.ROLE_CONSULTANT,
    "service_agent": staff_pb2.ROLE_SERVICE_AGENT, "broker": staff_pb2.ROLE_BROKER,
    "analyst": staff_pb2.ROLE_ANALYST, "compliance": staff_pb2.ROLE_COMPLIANCE,
    "supervisor": staff_pb2.ROLE_SUPERVISOR, "admin": staff_pb2.ROLE_ADMIN,
    "quality_inspector": staff_pb2.ROLE_QUALITY_INSPECTOR,
}
SECURITIES = [
    ("600519", "贵州茅台", 3, "1620"), ("000858", "五粮液", 3, "142"),
    ("601318", "中国平安", 3, "45.2"), ("600036", "招商银行", 2, "33.8"),
    ("000001", "平安银行", 2, "11.2"), ("601398", "工商银行", 2, "5.9"),
    ("300750", "宁德时代", 4, "182"), ("002594", "比亚迪", 4, "238"),
    ("601012", "隆基绿能", 4, "19.6"), ("600276", "恒瑞医药", 3, "46.5"),
    ("000333", "美的集团", 3, "66.3"), ("600900", "长江电力", 2, "28.4"),
    ("601888", "中国中免", 4, "72.1"), ("002415", "海康威视", 3, "31.9"),
    ("688981", "中芯国际", 5, "86.4"), ("300059", "东方财富", 4, "14.3"),
    ("600030", "中信证券", 3, "21.7"), ("601166", "兴业银行", 2, "17.9"),
    ("000725", "京东方A", 4, "4.1"), ("688111", "金山办公", 5, "256"),
    ("300124", "汇川技术", 4, "58.2"), ("600309", "万华化学", 3, "82.5"),
    ("002475", "立讯精密", 4, "33.1"), ("601899", "紫金矿业", 3, "16.4"),
    ("600585", "海螺水泥", 3, "24.2"), ("000651", "格力电器", 3, "39.8"),
    ("300015", "爱尔眼科", 4, "12.6"), ("688012", "中微公司", 5, "148"),
    ("510300", "沪深300ETF", 2, "3.72"), ("159915", "创业板ETF", 3, "1.96"),
]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


async def load(demo: Demo) -> None:
    stub = DirectoryServiceStub(demo.channel("directory"))
    rng = demo.rng
    admin = demo.as_admin()
    n = 0
    for role, count in STAFF_PLAN:
        for _ in range(count):
            n += 1
            lead = demo.staff.get("supervisor", [""])[0] if role == "service_agent" else ""
            roles = [ROLE_ENUM[role]] + ([ROLE_ENUM["analyst"]] if role == "broker" and n % 4 == 0
                                         else [])
            staff = await stub.CreateStaff(api.CreateStaffRequest(
                staff=staff_pb2.Staff(employee_no=f"S{n:04d}", display_name=_name(rng),
                                      roles=roles, team_lead_id=lead),
                request_id=f"demo-staff-{n}"), metadata=admin)
            demo.staff.setdefault(role, []).append(staff.id)
    n += 1
    ops = await stub.CreateStaff(api.CreateStaffRequest(
        staff=staff_pb2.Staff(employee_no=f"S{n:04d}", display_name=_name(rng),
                              roles=[ROLE_ENUM["admin"]]), request_id=f"demo-staff-{n}"),
        metadata=admin)
    demo.staff.setdefault("admin", []).append(ops.id)

    today = demo.today
    specs = []
    for i in range(demo.client_count):
        onsite = rng.random() < 0.55
        key = rng.random() < 0.08
        assessed = today - timedelta(days=rng.randint(0, 900))
        opened = today - timedelta(days=rng.choice([rng.randint(0, 29), rng.randint(30, 1800),
                                                   rng.randint(30, 1800)]))
        specs.append(client_pb2.Client(
            account_no=f"3100{i:06d}",
            display_name=_name(rng),
            phone=f"+86 13{rng.randint(0, 9)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
            channel=client_pb2.CHANNEL_ONSITE if onsite else client_pb2.CHANNEL_REMOTE,
            tier=client_pb2.TIER_KEY if key else client_pb2.TIER_STANDARD,
            risk_tolerance=client_pb2.RiskTolerance.ValueType(
                rng.choices([1, 2, 3, 4, 5], weights=[8, 20, 35, 25, 12])[0]),
            risk_assessed_on=assessed.isoformat(),
            operating_style=client_pb2.OperatingStyle.ValueType(rng.randint(1, 4)),
            client_manager_id=rng.choice(demo.staff["client_manager"]) if onsite else "",
            broker_id=rng.choice(demo.staff["broker"]) if key or rng.random() < 0.5 else "",
            commission_rate="0.0006" if key else rng.choice(["0.00025", "0.0003", "0.00018"]),
            opened_on=opened.isoformat(),
        ))

    from services.cli.demo import DemoClient

    async def create(i: int, msg: client_pb2.Client) -> client_pb2.Client:
        return await stub.CreateClient(api.CreateClientRequest(
            client=msg, request_id=f"demo-client-{i}"), metadata=admin)

    created: list[client_pb2.Client] = []
    for start in range(0, demo.client_count, 100):
        chunk = specs[start:start + 100]
        created += await asyncio.gather(*(create(start + j, m) for j, m in enumerate(chunk)))
    for c in created:
        demo.clients.append(DemoClient(id=c.id, channel=c.channel, tier=c.tier,
                                       risk_tolerance=c.risk_tolerance, broker_id=c.broker_id,
                                       client_manager_id=c.client_manager_id))
    demo.tickers = [t for t, *_ in SECURITIES]
    result = await stub.ImportTrades(_batched(_market(demo)), metadata=admin)
    print(f"demo: directory {len(created)} clients, {sum(map(len, demo.staff.values()))} staff,"
          f" import accepted {result.accepted} (duplicates {result.duplicate},"
          f" rejected {result.rejected})", flush=True)


async def _batched(
    records: AsyncIterator[api.ImportRecord], size: int = 500
) -> AsyncIterator[api.ImportTradesRequest]:
    """Many records per message: the stream's per-message cost dominates single records."""
    batch: list[api.ImportRecord] = []
    async for one in records:
        batch.append(one)
        if len(batch) >= size:
            yield api.ImportTradesRequest(batch=batch)
            batch = []
    if batch:
        yield api.ImportTradesRequest(batch=batch)


async def _market(demo: Demo) -> AsyncIterator[api.ImportRecord]:
    """Securities, a year of trades per client (positions kept consistent), then holdings."""
    rng = demo.rng
    for ticker, name, risk, list_price in SECURITIES:
        yield api.ImportRecord(security=holding_pb2.Security(
            ticker=ticker, name=name, risk_level=client_pb2.RiskLevel.ValueType(risk),
            last_price=list_price))
    last = {t: Decimal(p) for t, _, _, p in SECURITIES}
    start = demo.now - timedelta(days=365)
    for ci, client in enumerate(demo.clients):
        picks = rng.sample(SECURITIES, rng.randint(1, 5))
        client.tickers = [t for t, *_ in picks]
        position: dict[str, tuple[int, Decimal]] = {}
        when = start + timedelta(hours=rng.randint(0, 200))
        for k in range(rng.randint(5, 45)):
            ticker, _, _, _ = rng.choice(picks)
            qty_held, cost = position.get(ticker, (0, Decimal(0)))
            price = (last[ticker] * Decimal(1 + rng.uniform(-0.25, 0.25))).quantize(Decimal("0.01"))
            sell = qty_held > 0 and rng.random() < 0.45
            qty = (rng.randint(1, max(1, qty_held // 100)) * 100 if sell
                   else rng.randint(1, 20) * 100)
            qty = min(qty, qty_held) if sell else qty
            if sell:
                position[ticker] = (qty_held - qty, cost)
            else:
                total = cost * qty_held + price * qty
                position[ticker] = (qty_held + qty, (total / (qty_held + qty)).quantize(
                    Decimal("0.0001")))
            when += timedelta(hours=rng.randint(2, 400))
            if when > demo.now:
                break
            yield api.ImportRecord(trade=holding_pb2.Trade(
                trade_id=f"D{ci:05d}-{k:03d}", client_id=client.id, ticker=ticker,
                side=holding_pb2.SIDE_SELL if sell else holding_pb2.SIDE_BUY, quantity=qty,
                price=str(price), fee=str((price * qty * Decimal("0.0003")).quantize(
                    Decimal("0.01"))), trade_time=ts(when)))
        for ticker, (qty, cost) in sorted(position.items()):
            if qty > 0:
                yield api.ImportRecord(holding=api.HoldingSnapshot(
                    client_id=client.id, ticker=ticker, quantity=qty, cost_price=str(cost),
                    market_price=str(last[ticker]), as_of=demo.today.isoformat()))
        client.tickers = sorted(t for t, (q, _) in position.items() if q > 0)

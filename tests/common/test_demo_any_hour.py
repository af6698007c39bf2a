"""The demo branch loads at any hour of the branch's day, in any zone, on any date.

Every service runs in-process on a frozen clock (the injected FakeClock) set to a local wall
time in the branch's zone, and the whole loader (services/cli/demo.py) runs against them with
a small branch (60 clients instead of 2,000: every loader path still runs). Before the fix
the demo placed yesterday's deliveries, today's calls and visits after "now" before about
09:00 local, and the services refused them (INVALID_ARGUMENT "must not be in the future").

The cases: each local hour the issue names once, the two zones and the two kinds of date
spread over them (4 loads of about 20 s each): 00:30 Asia/Shanghai on 1 January, a
Thursday (still 31 December in UTC; yesterday's forms were delivered "8 to 22 hours after
11:00", the issue's failure), 08:59 Asia/Shanghai on a Monday, 11:00 Europe/London on a
Monday, 23:59 Europe/London on 1 January. The dates lie in the past: the services sign their
own tokens with the frozen clock, and the real clock that checks them refuses one issued "in
the future".
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services import registry
from services.cli.demo import load_demo
from services.common.clock import FakeClock
from services.common.nats_link import free_port
from services.common.server import ServiceRunner
from services.common.settings import Settings
from tests.harness import make_settings

CASES = [
    ("Asia/Shanghai", datetime(2026, 1, 1, 0, 30)),     # 1 January (a Thursday), 00:30
    ("Asia/Shanghai", datetime(2026, 3, 2, 8, 59)),     # a Monday, a minute before 09:00
    ("Europe/London", datetime(2026, 3, 2, 11, 0)),     # a Monday, at the forms' raise time
    ("Europe/London", datetime(2026, 1, 1, 23, 59)),    # 1 January, before midnight
]


@pytest.mark.parametrize(("zone", "local"), CASES,
                         ids=[f"{z.split('/')[1]}-{t:%Y%m%d-%H%M}" for z, t in CASES])
async def test_demo_loads_at_any_hour(tmp_path: Path, nats_url: str, zone: str,
                                      local: datetime) -> None:
    clock = FakeClock(local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC))
    ports = {name: free_port() for name in registry.SERVICES}
    settings = make_settings(tmp_path, nats_url, timezone=zone,
                             **{f"{n}_addr": f"127.0.0.1:{p}" for n, p in ports.items()})
    async with AsyncExitStack() as stack:
        signer = None
        for spec in registry.specs():
            runner = ServiceRunner(spec, settings, clock=clock, port=ports[spec.name])
            await runner.start()
            stack.push_async_callback(runner.stop, 1)
            if runner.signing is not None:
                signer = runner.signing.signer()
        from services.cli.branch import _admin_id

        assert signer is not None
        first = (zone, local) == CASES[0]  # the demo's sign-ins: once (argon2 is slow)
        demo = await load_demo(settings, await _admin_id(settings), signer, now=clock.now(),
                               client_count=60, accounts=first)
        if first:
            await _demo_accounts_sign_in(settings)
    assert demo is not None
    assert len(demo.clients) == 60
    assert demo.shared.get("research_notes")
    assert (tmp_path / "demo.loaded").exists()


async def _demo_accounts_sign_in(settings: Settings) -> None:
    """Each demo account (`branch up --demo` prints them) signs in with the printed
    password and carries its role."""
    import grpc
    from branch.directory.v1 import identity_pb2
    from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub

    from services.cli.demo import DEMO_ROLES, read_demo_accounts

    found = read_demo_accounts(settings.data_dir)
    assert found is not None
    password, accounts = found
    assert [r for r, _no, _name in accounts] == list(DEMO_ROLES)
    assert (settings.data_dir / "demo.accounts").stat().st_mode & 0o777 == 0o600
    async with grpc.aio.insecure_channel(settings.address("directory")) as ch:
        identity: Any = IdentityServiceStub(ch)
        for role, employee_no, _name in accounts:
            reply = await identity.Login(identity_pb2.LoginRequest(
                employee_no=employee_no, password=password))
            assert role in reply.roles

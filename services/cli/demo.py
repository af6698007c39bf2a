"""The demo branch: deterministic data loaded through the public APIs of every service.

directory's demo runs first and fills Demo.staff and Demo.clients; every other service's
`demo.load(demo)` then builds on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc

from services import registry
from services.common import channels
from services.common.auth import TokenSigner
from services.common.clock import SystemClock, local_date
from services.common.retry import RetryTransient
from services.common.settings import Settings

SEED = 20261126


@dataclass
class DemoClient:
    id: str
    channel: int
    tier: int
    risk_tolerance: int
    broker_id: str
    client_manager_id: str
    tickers: list[str] = field(default_factory=list)


@dataclass
class Demo:
    settings: Settings
    admin_token: str
    # the directory's signer: the demo loads inside `branch up`, beside the directory
    signer: TokenSigner | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    now: datetime = field(default_factory=lambda: SystemClock().now())
    # how many clients the directory demo creates (tests load a small branch)
    client_count: int = 2000
    # role name -> staff ids
    staff: dict[str, list[str]] = field(default_factory=dict)
    clients: list[DemoClient] = field(default_factory=list)
    tickers: list[str] = field(default_factory=list)
    # free-form results one service's demo leaves for the next (e.g. published note ids)
    shared: dict[str, Any] = field(default_factory=dict)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            # a call that finds a service (or its peer) briefly unable to answer is retried:
            # every create the demo sends carries a request_id, so a retry is harmless
            self._channels[service] = channels.aio_channel(
                self.settings, service, interceptors=[RetryTransient()])
        return self._channels[service]

    @property
    def today(self) -> date:
        """The demo's branch-local date (BRANCH_TIMEZONE; 00:30 in Shanghai is still
        yesterday in UTC)."""
        return local_date(self.now, ZoneInfo(self.settings.timezone))

    def local_now(self) -> datetime:
        """The demo's now on the branch's wall clock (BRANCH_TIMEZONE)."""
        return self.now.astimezone(ZoneInfo(self.settings.timezone))

    def past(self, when: datetime) -> datetime:
        """when, or now if when is later: a time the demo sends for something that has
        happened is never in the future, whatever the hour, zone or date the demo runs at
        (yesterday's forms delivered "8 to 22 hours after 11:00" would be, before 09:00)."""
        return min(when, self.now)

    def as_admin(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.admin_token}")]

    def as_staff(self, staff_id: str, *roles: str) -> list[tuple[str, str]]:
        """Metadata for a call made by this staff member (demo tokens, ten minutes)."""
        if self.signer is None:
            raise RuntimeError("the demo signs as staff with the directory's signer")
        token = self.signer.issue(staff_id, roles, SystemClock().now(), timedelta(minutes=10))
        return [("authorization", f"Bearer {token}")]

    def as_role(self, role: str, index: int = 0) -> list[tuple[str, str]]:
        return self.as_staff(self.staff[role][index % len(self.staff[role])], role)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()


async def load_demo(settings: Settings, admin_id: str, signer: TokenSigner, *,
                    now: datetime | None = None, client_count: int = 2000,
                    accounts: bool = True) -> Demo | None:
    """Load the demo branch once per data directory; a second `--demo` only says so.

    admin_id, signer: the bootstrap admin and the directory's signer (the demo runs beside
    the directory and signs its staff's short tokens with it).
    now: the instant the demo's history ends (default: the system clock; tests pass the
    services' frozen clock); every time the demo sends is at or before it.
    client_count: clients the directory demo creates (a small branch for tests).
    accounts: give one staff member of each role a password to sign in with (DEMO_ROLES;
    written to <data-dir>/demo.accounts, printed by `branch up --demo`).
    """
    marker = settings.data_dir / "demo.loaded"
    if marker.exists():
        print(f"demo: already loaded into {settings.data_dir} (remove the directory, or give "
              "another --data-dir, for a fresh one)", flush=True)
        return None
    admin_token = signer.issue(admin_id, ["admin"], SystemClock().now(), timedelta(minutes=10))
    demo = Demo(settings=settings, admin_token=admin_token, signer=signer,
                client_count=client_count)
    if now is not None:
        demo.now = now
    try:
        for service in registry.SERVICES:
            module = registry.demo_module(service)
            if module is not None and registry.spec(service) is not None:
                print(f"demo: loading {service} ...", flush=True)
                await module.load(demo)
            if service == "directory" and accounts:  # while the admin token is fresh
                await make_demo_accounts(demo)
    finally:
        await demo.close()
    marker.write_text(demo.now.isoformat() + "\n")
    return demo


# one sign-in per role for the console (`branch up --demo` prints them)
DEMO_ROLES = ("client_manager", "consultant", "service_agent", "broker", "analyst",
              "compliance", "supervisor", "quality_inspector", "admin")
ACCOUNTS_FILE = "demo.accounts"


async def make_demo_accounts(demo: Demo) -> list[tuple[str, str, str]]:
    """The first staff member of each of DEMO_ROLES gets one password (random per data
    directory), set through the directory's ResetPassword and ChangePassword as a person
    would; (role, employee number, name) of each is written with the password to
    <data-dir>/demo.accounts (mode 0600)."""
    import os
    import secrets

    from branch.directory.v1 import directory_service_pb2 as dapi
    from branch.directory.v1 import identity_pb2
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
    from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub

    password = "demo-" + secrets.token_urlsafe(9)
    directory = DirectoryServiceStub(demo.channel("directory"))
    identity = IdentityServiceStub(demo.channel("directory"))
    made = []
    for role in DEMO_ROLES:
        if not demo.staff.get(role):
            continue
        staff = await directory.GetStaff(dapi.GetStaffRequest(id=demo.staff[role][0]),
                                         metadata=demo.as_admin())
        temp = await identity.ResetPassword(identity_pb2.ResetPasswordRequest(
            staff_id=staff.id), metadata=demo.as_admin())
        await identity.ChangePassword(identity_pb2.ChangePasswordRequest(
            employee_no=staff.employee_no, password=temp.temporary_password,
            new_password=password))
        made.append((role, staff.employee_no, staff.display_name))
    path = demo.settings.data_dir / ACCOUNTS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"password\t{password}\n")
        f.writelines(f"{r}\t{no}\t{name}\n" for r, no, name in made)
    return made


def read_demo_accounts(data_dir: Path) -> tuple[str, list[tuple[str, str, str]]] | None:
    """(password, [(role, employee number, name)]) from <data_dir>/demo.accounts, or None."""
    path = data_dir / ACCOUNTS_FILE
    if not path.exists():
        return None
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    password = lines[0][1]
    return password, [(r, no, name) for r, no, name in lines[1:]]

"""The demo branch: deterministic data loaded through the public APIs of every service.

directory's demo runs first and fills Demo.staff and Demo.clients; every other service's
`demo.load(demo)` then builds on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
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
                    now: datetime | None = None, client_count: int = 2000) -> Demo | None:
    """Load the demo branch once per data directory; a second `--demo` only says so.

    admin_id, signer: the bootstrap admin and the directory's signer (the demo runs beside
    the directory and signs its staff's short tokens with it).
    now: the instant the demo's history ends (default: the system clock; tests pass the
    services' frozen clock); every time the demo sends is at or before it.
    client_count: clients the directory demo creates (a small branch for tests).
    """
    marker = settings.data_dir / "demo.loaded"
    if marker.exists():
        print(f"demo: already loaded into {settings.data_dir} (remove the directory, or give "
              "another --data-dir, for a fresh one)", flush=True)
        return None
    admin_token = signer.issue(admin_id, ["admin"], SystemClock().now(), timedelta(minutes=10))
    demo = Demo(settings=settings, admin_token=admin_token, signer=signer,
                client_count=client_count, **({"now": now} if now is not None else {}))
    try:
        for service in registry.SERVICES:
            module = registry.demo_module(service)
            if module is not None and registry.spec(service) is not None:
                print(f"demo: loading {service} ...", flush=True)
                await module.load(demo)
    finally:
        await demo.close()
    marker.write_text(demo.now.isoformat() + "\n")
    return demo

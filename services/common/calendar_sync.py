"""Keeps a service's BranchCalendar in step with the directory's operator overrides.

Every replica loads the overrides at start (one quick try, then retrying in the background
while it serves with the library's calendar), reloads at once when it sees
`branch.directory.calendar.changed` (a plain NATS subscription, so every replica hears it, not
one of a shared durable consumer), and every BRANCH_CALENDAR_REFRESH_SECONDS in any case, so a
missed event or a NATS outage only delays a change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
from branch.directory.v1 import calendar_pb2 as cpb
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.calendar import BranchCalendar, Override
from services.common.logs import get_logger

CHANGED = "branch.directory.calendar.changed"
FIRST_TRY_SECONDS = 3.0
RETRY_MAX_SECONDS = 30.0

Loader = Callable[[], Awaitable[list[Override]]]


def directory_loader(channel: Callable[[], grpc.aio.Channel], timeout: float = 10.0) -> Loader:
    """Fetch every override from the directory's ListCalendarDays (service token)."""

    async def load() -> list[Override]:
        from datetime import date

        from services.common.protos import from_ts

        reply = await DirectoryServiceStub(channel()).ListCalendarDays(
            cpb.ListCalendarDaysRequest(overrides_only=True), timeout=timeout)
        return [Override(day=date.fromisoformat(d.date), working=d.working, note=d.note,
                         set_by=d.set_by, set_at=from_ts(d.update_time)) for d in reply.days]

    return load


class CalendarSync:
    def __init__(self, service: str, calendar: BranchCalendar, load: Loader,
                 refresh_seconds: float) -> None:
        self.calendar = calendar
        self.load = load
        self.refresh = refresh_seconds
        self.wake = asyncio.Event()
        self.log = get_logger(service, component="calendar")
        self.failures = 0

    async def once(self, timeout: float | None = None) -> bool:
        """One load; True when the overrides were replaced."""
        try:
            overrides = await asyncio.wait_for(self.load(), timeout)
        except Exception as exc:  # the directory is down or slow: keep what we have
            if self.failures == 0:
                self.log.warning("calendar overrides not loaded; retrying",
                                 error=type(exc).__name__)
            self.failures += 1
            return False
        self.calendar.replace_overrides(overrides)
        if self.failures:
            self.log.info("calendar overrides loaded", overrides=len(overrides))
        self.failures = 0
        return True

    def on_changed(self) -> None:
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = (self.refresh if self.failures == 0
                     else min(2.0 ** self.failures, RETRY_MAX_SECONDS, self.refresh))
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if stop.is_set():
                return
            self.wake.clear()
            await self.once()

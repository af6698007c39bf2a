"""What every VIP area shares: database, clock, settings, time zone, the directory peer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import grpc
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.directory.v1 import directory_service_pb2_grpc as dir_grpc
from branch.directory.v1 import staff_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.clock import Clock, local_today
from services.common.db import Database
from services.common.errors import InvalidArgument, Msg, NotFound, Unavailable, Violations
from services.common.names import Keeper
from services.common.protos import from_ts
from services.common.suitability import assessment_expired, suitability_problem
from services.vip.config import VipConfig

# A risk assessment is valid for two years (适当性管理), as in the directory.

ROLE_NAMES = {
    staff_pb2.ROLE_BROKER: "broker",
    staff_pb2.ROLE_ANALYST: "analyst",
    staff_pb2.ROLE_SUPERVISOR: "supervisor",
}


@dataclass
class Vip:
    db: Database
    clock: Clock
    config: VipConfig
    tz: ZoneInfo
    directory_channel: Callable[[], grpc.aio.Channel]
    # keeps the names of the staff the directory answers about (services/common/names.py)
    names: Keeper | None = None
    # set after a transaction that recorded a pending relay plan commits
    planner_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # (note_id, revision) -> trace context of the note event that recorded the plan, so the
    # planner's directory calls and events continue that trace (in memory: best effort)
    plan_traces: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return local_today(self.clock, self.tz)

    def directory(self) -> dir_grpc.DirectoryServiceAsyncStub:
        return dir_grpc.DirectoryServiceStub(self.directory_channel())

    async def staff_roles(self, staff_id: str) -> set[str] | None:
        """The active staff member's role names, or None when there is no such active staff."""
        try:
            staff = await self.directory().GetStaff(dir_api.GetStaffRequest(id=staff_id),
                                                    timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise Unavailable("directory is not reachable") from None
        if self.names is not None:
            self.names.saw(staff)
        if not staff.active:
            return None
        names = {staff_pb2.Role.Name(r).removeprefix("ROLE_").lower() for r in staff.roles}
        return names

    async def check_staff(self, v: Violations, field: str, staff_id: str, role: str) -> None:
        roles = await self.staff_roles(staff_id)
        if roles is None:
            v.add(field, "no such active staff member")
        elif role not in roles:
            v.add(field, "staff member is not a {role}", role=Msg(role))


# Times and dates a request may name: wide enough for any real use, narrow enough that time-zone
# conversion and "+ N days" never overflow (a bad value is INVALID_ARGUMENT, not INTERNAL).
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def timestamp(v: Violations, field: str, value: Timestamp) -> datetime | None:
    """A request's timestamp, None when unset; a bad or far-off value is a violation."""
    try:
        at = from_ts(value)
    except ValueError:
        v.add(field, "not a valid timestamp")
        return None
    if at is not None and not EARLIEST <= at <= LATEST:
        v.add(field, "out of range")
        return None
    return at


def day(v: Violations, field: str, value: str) -> date | None:
    """A request's YYYY-MM-DD, None when empty; a bad or far-off value is a violation."""
    if not value:
        return None
    try:
        out = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        out = None
    if out is None:
        v.add(field, "YYYY-MM-DD")
    elif not EARLIEST.date() <= out <= LATEST.date():
        v.add(field, "out of range")
        return None
    return out


def token_time(value: object) -> datetime:
    """The time a page token carries (one this service issued: ISO 8601 with an offset)."""
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise InvalidArgument({"page_token": "not a token this service issued"})
    return at


def split(value: str) -> list[str]:
    return [t for t in value.split(",") if t]


__all__ = ["NotFound", "Vip", "assessment_expired", "suitability_problem", "split"]

"""What every on-site module shares: the service's context, branch-local dates, scoping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from branch.directory.v1 import staff_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlmodel import select

from services.common.auth import Principal
from services.common.calendar import BranchCalendar
from services.common.clock import Clock, day_start, local_date
from services.common.db import Database
from services.common.errors import Field, InvalidArgument, PermissionDenied, Violations
from services.common.models import IdempotencyRecord
from services.common.protos import from_ts
from services.onsite.directory_link import DirectoryLink
from services.onsite.research_link import ResearchLink

M = TypeVar("M", bound=Message)

# How far back staff may record what already happened (visits, patrols) or an admin may
# backfill paper records; further back is refused.
BACKFILL_WINDOW = timedelta(days=60)
# Dates callers may name (plans, views, reports).
# Clock skew allowed for times "now" on the caller's side.
SKEW = timedelta(minutes=5)


@dataclass
class Onsite:
    db: Database
    clock: Clock
    tz: ZoneInfo
    directory: DirectoryLink
    research: ResearchLink | None = None
    calendar: BranchCalendar = field(default_factory=BranchCalendar)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.local_date(self.now())

    def local_date(self, when: datetime) -> date:
        return local_date(when, self.tz)

    def day_start(self, day: date) -> datetime:
        """The UTC instant the branch-local day begins."""
        return day_start(day, self.tz)


async def stored_result(o: Onsite, p: Principal, method: str, request_id: str,
                        response_type: type[M]) -> M | None:
    """The first answer to this caller's create with this request_id, if there was one.

    Looked up before the directory checks, so a retry after the client changed (reassigned,
    turned remote, left) returns the first result instead of a refusal (AIP-155).
    """
    if not request_id:
        return None
    async with o.db.read() as s:
        row = (await s.exec(select(IdempotencyRecord).where(
            IdempotencyRecord.staff_id == p.staff_id, IdempotencyRecord.method == method,
            IdempotencyRecord.request_id == request_id))).first()
    if row is None:
        return None
    message = response_type()
    message.ParseFromString(row.response)
    return message


def is_branch_wide(p: Principal) -> bool:
    return p.has("supervisor", "admin", "service")


def staff_scope(p: Principal, requested: str, field: str = "client_manager_id") -> str:
    """The staff id a call acts on: the caller's own, or anyone's for a supervisor."""
    if is_branch_wide(p):
        return requested or p.staff_id
    if requested and requested != p.staff_id:
        raise PermissionDenied("you may act only for yourself ({field})", field=Field(field),
                               reason="OUT_OF_SCOPE")
    return p.staff_id


async def acting_for(o: Onsite, p: Principal, requested: str, field: str) -> str:
    """The client manager a plan, visit or patrol is for: the caller, or (for a supervisor)
    an active client manager the directory knows; anything else would be stored as is."""
    manager = staff_scope(p, requested, field)
    if manager != p.staff_id:
        staff = await o.directory.get_staff(manager)
        if staff is None or not staff.active or staff_pb2.ROLE_CLIENT_MANAGER not in staff.roles:
            raise InvalidArgument({field: "not an active client manager"})
    return manager


def check_ids(v: Violations, field: str, ids: list[str], *, max_count: int = 20) -> None:
    if len(ids) > max_count:
        v.add(field, "at most {max_count}", max_count=max_count)
    if len(set(ids)) != len(ids):
        v.add(field, "must not repeat")
    for i, value in enumerate(ids):
        if not value.strip() or len(value) > 64:
            v.add(f"{field}[{i}]", "an id of 1 to 64 characters")


def read_time(v: Violations, field: str, value: Timestamp) -> datetime | None:
    """The timestamp, None when unset; out of range seconds or nanos is a bad field."""
    try:
        return from_ts(value)
    except ValueError:
        v.add(field, "not a valid timestamp")
        return None


def is_unset(value: Timestamp) -> bool:
    return value.seconds == 0 and value.nanos == 0


def past_time(o: Onsite, v: Violations, field: str, value: Timestamp) -> datetime:
    """A time something happened: unset means now; not in the future, not too old."""
    when = read_time(v, field, value)
    now = o.now()
    if when is None:
        return now
    if when > now + SKEW:
        v.add(field, "must not be in the future")
    elif when < now - BACKFILL_WINDOW:
        v.add(field, "at most {days} days ago", days=BACKFILL_WINDOW.days)
    return min(when, now)


def backfill_time(o: Onsite, p: Principal, v: Violations, value: Timestamp) -> datetime:
    """When a consultation step really happened: admin only, for migrating paper records."""
    if is_unset(value):
        return o.now()
    if not p.has("admin"):
        v.add("backfill_time", "only an admin may backfill paper records")
        return o.now()
    return past_time(o, v, "backfill_time", value)


def token_time(key: list[object]) -> datetime:
    """The time a page token ended on; a forged or garbled token is INVALID_ARGUMENT."""
    try:
        when = datetime.fromisoformat(str(key[0]))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidArgument({"page_token": "not a token this service issued"})
    return when


def token_int(key: list[object]) -> int:
    value = key[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument({"page_token": "not a token this service issued"})
    return value


def dumps(values: list[str]) -> str:
    return json.dumps(values, ensure_ascii=False)


def loads(text: str) -> list[str]:
    return list(json.loads(text or "[]"))

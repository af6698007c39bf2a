"""Display names of clients and staff, kept in each service's own database from the
directory's events, and put beside every id a response names (issue 13 "People, not UUIDs").

A service declares its copy as ``class PersonName(PersonNameBase, table=True)`` with
``__tablename__ = "<service>_person_name"``, subscribes with ``subscription(PersonName,
clock)`` and wraps its servicer with ``with_names(servicer, db, PersonName)``: every unary
response then gets, for each ``X_id`` (or ``X_by``) field that has a sibling
``X_display_name`` (or ``X_ids`` / ``X_display_names``), the name the copy holds ("" until
known).

Rows come from branch.directory.client.created/updated/tier_changed (the full Client) and
branch.directory.staff.created/deactivated (the full Staff); a new consumer reads the stream
from its start, so existing rows are filled by the events already there. Where a service
asks the directory for a client or staff member anyway it stores the name then too
(``remember_client`` / ``remember_staff``). Every write is ONE INSERT .. ON CONFLICT
statement that keeps the newer of two versions (the directory's update time), so a late
redelivery of an old event does not undo a rename.

Names are personal data: nothing here logs them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import events_pb2 as directory_events
from google.protobuf.message import Message
from sqlalchemy import or_
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock
from services.common.consumer import Subscription
from services.common.db import Database, UtcDateTime
from services.common.events import Event
from services.common.logs import get_logger
from services.common.protos import from_ts
from services.common.upsert import session_insert

CLIENT = "client"
STAFF = "staff"
NAME_SUBJECTS = (
    "branch.directory.client.created",
    "branch.directory.client.updated",
    "branch.directory.client.tier_changed",
    "branch.directory.staff.created",
    "branch.directory.staff.deactivated",
)
SUFFIX, ID_SUFFIX = "_display_name", "_id"
MANY_SUFFIX, IDS_SUFFIX = "_display_names", "_ids"


class PersonNameBase(SQLModel):
    """One client's or staff member's display name as the directory last announced it."""

    person_id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=10)  # "client" or "staff"
    display_name: str = Field(max_length=100)
    # the directory's time of the version the name comes from (Client.update_time, or the
    # staff member's create/deactivate time); a write older than the stored one is ignored
    source_time: datetime | None = Field(default=None, sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


async def remember(session: AsyncSession, model: Any, *, person_id: str, kind: str,
                   display_name: str, source_time: datetime | None, now: datetime) -> None:
    """Insert or update one name in ONE statement, in the session's transaction. A row
    whose source_time is newer than `source_time` stays as it is."""
    if not person_id or not display_name:
        return
    table = model.__table__
    row = {"person_id": person_id, "kind": kind, "display_name": display_name,
           "source_time": source_time, "updated_at": now}
    stmt = (await session_insert(session, model)).values(**row)
    newer = or_(table.c.source_time.is_(None), stmt.excluded.source_time.is_(None),
                stmt.excluded.source_time >= table.c.source_time)
    await session.exec(stmt.on_conflict_do_update(
        index_elements=["person_id"], where=newer,
        set_={c: stmt.excluded[c] for c in ("kind", "display_name", "source_time",
                                              "updated_at")}))


async def remember_client(session: AsyncSession, model: Any, client: client_pb2.Client,
                          now: datetime) -> None:
    """Keep the name of a Client message (from an event or a GetClient answer)."""
    await remember(session, model, person_id=client.id, kind=CLIENT,
                   display_name=client.display_name,
                   source_time=from_ts(client.update_time) or from_ts(client.create_time),
                   now=now)


async def remember_staff(session: AsyncSession, model: Any, staff: staff_pb2.Staff,
                         now: datetime) -> None:
    """Keep the name of a Staff message (from an event or a GetStaff answer)."""
    times = [t for t in (from_ts(staff.create_time), from_ts(staff.deactivate_time)) if t]
    await remember(session, model, person_id=staff.id, kind=STAFF,
                   display_name=staff.display_name, source_time=max(times, default=None),
                   now=now)


def handler(model: Any, clock: Clock) -> Callable[[AsyncSession, Event], Awaitable[None]]:
    """The consumer handler for NAME_SUBJECTS."""

    async def handle(session: AsyncSession, event: Event) -> None:
        now = clock.now()
        kind = event.type.removeprefix("branch.directory.")
        if kind == "client.created":
            await remember_client(session, model,
                                  event.parse(directory_events.ClientCreated).client, now)
        elif kind == "client.updated":
            await remember_client(session, model,
                                  event.parse(directory_events.ClientUpdated).client, now)
        elif kind == "client.tier_changed":
            await remember_client(session, model,
                                  event.parse(directory_events.ClientTierChanged).client, now)
        elif kind == "staff.created":
            await remember_staff(session, model,
                                 event.parse(directory_events.StaffCreated).staff, now)
        elif kind == "staff.deactivated":
            await remember_staff(session, model,
                                 event.parse(directory_events.StaffDeactivated).staff, now)

    return handle


def subscription(model: Any, clock: Clock) -> Subscription:
    """The service's durable consumer "<service>-directory-names"."""
    return Subscription("directory-names", list(NAME_SUBJECTS), handler(model, clock))


async def lookup(session: AsyncSession, model: Any, ids: Iterable[str]) -> dict[str, str]:
    """{person_id: display_name} for the ids the copy knows; unknown ids are left out."""
    wanted = sorted({i for i in ids if i})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = await session.exec(select(model.person_id, model.display_name).where(
            col(model.person_id).in_(wanted[start:start + 500])))
        found.update({pid: name for pid, name in rows.all()})
    return found


class Keeper:
    """Stores the names in the Client and Staff answers a service got from the directory
    (first use: a row the events have not reached yet gets its name now).

    saw() returns at once; the write runs as a task of its own in its own transaction, so a
    caller inside a read session or a write transaction never waits on it (on SQLite it
    waits for the caller's commit instead). A failed write is logged by id and error type
    only; the next event or answer writes the name again."""

    def __init__(self, db: Database, model: Any, clock: Clock) -> None:
        self.db, self.model, self.clock = db, model, clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = get_logger(db.service, component="names")

    def saw(self, person: client_pb2.Client | staff_pb2.Staff | None) -> None:
        if person is None or not person.id or not person.display_name:
            return
        task = asyncio.get_running_loop().create_task(self._keep(person))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep(self, person: client_pb2.Client | staff_pb2.Staff) -> None:
        try:
            async with self.db.transaction() as session:
                if isinstance(person, client_pb2.Client):
                    await remember_client(session, self.model, person, self.clock.now())
                else:
                    await remember_staff(session, self.model, person, self.clock.now())
        except Exception as exc:  # a missed first-use copy is filled by the next event
            self._log.warning("name copy not written", person_id=person.id,
                              error=type(exc).__name__)

    async def settled(self) -> None:
        """Wait for the writes started so far (tests, shutdown)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


Slot = tuple[Message, str, Any]  # (message, name field, id or list of ids)


def _slots(message: Message, out: list[Slot]) -> None:
    fields = message.DESCRIPTOR.fields_by_name
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                continue
            value = getattr(message, field.name)
            if field.is_repeated:
                for item in value:
                    _slots(item, out)
            elif message.HasField(field.name):
                _slots(value, out)
        elif field.name.endswith(MANY_SUFFIX) and field.is_repeated:
            ids = field.name.removesuffix(MANY_SUFFIX) + IDS_SUFFIX
            if ids in fields and not getattr(message, field.name):
                out.append((message, field.name, list(getattr(message, ids))))
        elif field.name.endswith(SUFFIX):
            base = field.name.removesuffix(SUFFIX)
            one = base + ID_SUFFIX if base + ID_SUFFIX in fields else base  # X_id or X_by
            if one in fields and not getattr(message, field.name):
                out.append((message, field.name, getattr(message, one)))


def _ids(slots: list[Slot]) -> set[str]:
    ids: set[str] = set()
    for _, _, value in slots:
        ids.update(value if isinstance(value, list) else [value])
    return ids


async def fill(db: Database, model: Any, message: Message) -> None:
    """Set every empty X_display_name beside an X_id (and X_display_names beside X_ids) in
    `message` and the messages inside it, from the copy, in one read."""
    slots: list[Slot] = []
    _slots(message, slots)
    ids = _ids(slots)
    if not ids:
        return
    async with db.read() as session:
        names = await lookup(session, model, ids)
    for target, name_field, value in slots:
        if isinstance(value, list):
            getattr(target, name_field).extend(names.get(i, "") for i in value)
        else:
            setattr(target, name_field, names.get(value, ""))


def with_names(servicer: Any, db: Database, model: Any) -> Any:
    """Wrap every unary RPC method of `servicer` (an instance of a generated ...Servicer)
    so its response passes through fill() before it is sent. Streaming methods are left."""
    for name, method in inspect.getmembers(servicer, inspect.iscoroutinefunction):
        if name.startswith("_") or not name[:1].isupper():
            continue

        def wrap(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(method)
            async def call(request: Any, context: Any) -> Any:
                response = await method(request, context)
                if isinstance(response, Message):
                    await fill(db, model, response)
                return response

            return call

        setattr(servicer, name, wrap(method))
    return servicer

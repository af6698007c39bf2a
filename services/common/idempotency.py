"""AIP-155 request_id: a retried create returns the first result instead of creating twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import bindparam
from sqlalchemy import select as select_core
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import audit
from services.common.auth import current_principal
from services.common.clock import Clock
from services.common.db import Database, Write
from services.common.errors import InvalidArgument, Msg
from services.common.models import IdempotencyRecord

M = TypeVar("M", bound=Message)

MAX_REQUEST_ID = 100


async def once(
    db: Database,
    clock: Clock,
    *,
    method: str,
    request_id: str,
    response_type: type[M],
    create: Callable[[AsyncSession], Awaitable[M]],
) -> M:
    """Run create in a transaction, or return the stored response for this request_id. The
    call's audit record (OK) is written in the same transaction (audit.write_with_change).

    An empty request_id means the caller does not want retries to be safe: create always runs.
    """
    staff_id, stored = await _before(db, method, request_id, response_type)
    if stored is not None:
        return stored
    try:
        async with db.transaction() as session:
            result = await create(session)
            if request_id:
                session.add(
                    IdempotencyRecord(
                        staff_id=staff_id,
                        method=method,
                        request_id=request_id,
                        response=result.SerializeToString(),
                        created_at=clock.now(),
                    )
                )
            audit.write_with_change(session, result)
        return result
    except IntegrityError:
        # A concurrent retry won the race; its answer is the answer.
        if request_id:
            stored = await _stored(db, staff_id, method, request_id, response_type)
            if stored is not None:
                return stored
        raise


IDEMPOTENCY_TABLE = IdempotencyRecord.__table__  # type: ignore[attr-defined]


async def once_in(
    db: Database,
    clock: Clock,
    *,
    method: str,
    request_id: str,
    response_type: type[M],
    create: Callable[[Write], M],
    explain: Callable[[], Awaitable[None]] | None = None,
) -> M:
    """once() for a create written with SQLAlchemy Core statements in one Database.write
    transaction (create runs there, synchronously, and returns the response): the change,
    its outbox row, the call's audit record (OK) and the stored response for request_id all
    commit together, or nothing does.

    Uniqueness is left to the database's constraints instead of checks that cost a round
    trip on every call. On a unique violation (IntegrityError, nothing written): the stored
    response when a concurrent call with the same request_id won the race; else explain()
    is awaited, which raises the clear error for what was taken (e.g. ALREADY_EXISTS for an
    account number); else the IntegrityError is raised. An empty request_id: create always
    runs. Raises INVALID_ARGUMENT for a request_id over MAX_REQUEST_ID characters.
    """
    staff_id, stored = await _before(db, method, request_id, response_type)
    if stored is not None:
        return stored

    def work(w: Write) -> M:
        result = create(w)
        if request_id:
            w.insert(IDEMPOTENCY_TABLE, {
                "staff_id": staff_id, "method": method, "request_id": request_id,
                "response": result.SerializeToString(), "created_at": clock.now()})
        audit.write_in(w, result)
        return result

    try:
        return await db.write(work)
    except IntegrityError:
        if request_id:
            stored = await _stored(db, staff_id, method, request_id, response_type)
            if stored is not None:
                return stored
        if explain is not None:
            await explain()
        raise


STORED_RESPONSE = select_core(IDEMPOTENCY_TABLE.c.response).where(
    IDEMPOTENCY_TABLE.c.staff_id == bindparam("staff_id"),
    IDEMPOTENCY_TABLE.c.method == bindparam("method"),
    IDEMPOTENCY_TABLE.c.request_id == bindparam("request_id"))


async def _before(
    db: Database, method: str, request_id: str, response_type: type[M]
) -> tuple[str, M | None]:
    """The caller's staff id, and the response stored for request_id (None: run the
    create). Raises INVALID_ARGUMENT for a request_id over MAX_REQUEST_ID characters."""
    if len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgument({"request_id": Msg("at most {max_request_id} characters",
                                                 max_request_id=MAX_REQUEST_ID)})
    staff_id = current_principal().staff_id
    if not request_id:
        return staff_id, None
    return staff_id, await _stored(db, staff_id, method, request_id, response_type)


async def _stored(
    db: Database, staff_id: str, method: str, request_id: str, response_type: type[M]
) -> M | None:
    # one Core read (Database.fetch_one): asked on every create that carries a request_id
    row = await db.fetch_one(STORED_RESPONSE, {"staff_id": staff_id, "method": method,
                                               "request_id": request_id})
    if row is None:
        return None
    message = response_type()
    message.ParseFromString(row.response)
    return message

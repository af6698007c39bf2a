"""Audit records: written by the RPC interceptor for every mutating call (with the change
where the outcome is known, else in a transaction of their own), and AuditService, which
lists each service's records to supervisors and admins."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from branch.common.v1 import audit_pb2, audit_pb2_grpc
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Access, allow
from services.common.db import Committed, Database, Write
from services.common.models import AuditRecord
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts

AUDIT_ACCESS: dict[str, Access] = {"ListAuditRecords": allow("supervisor", "admin")}
# session.info key: the call's audit record is in this transaction
IN_TRANSACTION = "branch_audit"


@dataclass
class PendingAudit:
    """The audit record a mutating call owes. `record(outcome, response)` makes the row;
    `written` turns true once a transaction holding the OK row has committed, and the
    interceptor then writes none of its own."""

    record: Callable[[str, Any], AuditRecord]
    written: bool = False


_pending: contextvars.ContextVar[PendingAudit | None] = contextvars.ContextVar(
    "branch_pending_audit", default=None)


def owe(pending: PendingAudit | None) -> contextvars.Token[PendingAudit | None]:
    """The interceptor: this call owes an audit record (None: it owes none)."""
    return _pending.set(pending)


def settle(token: contextvars.Token[PendingAudit | None]) -> None:
    _pending.reset(token)


def write_with_change(session: AsyncSession, response: Any) -> None:
    """Inside the transaction that makes a mutating call's change, once its response is
    built: add the call's audit record (outcome OK) to that same transaction, so the change
    and its audit commit together and the call pays for one transaction, not two. A call
    that ends otherwise (refused, failed, rolled back) is audited by the interceptor."""
    pending = _pending.get()
    if pending is None or pending.written or IN_TRANSACTION in session.info:
        return
    session.add(pending.record("OK", response))
    session.info[IN_TRANSACTION] = pending


AUDIT_TABLE = AuditRecord.__table__  # type: ignore[attr-defined]


def write_in(w: Write, response: Any) -> None:
    """write_with_change() for a Database.write transaction: the call's OK audit record is
    inserted with a Core statement on w's connection and commits with the change."""
    pending = _pending.get()
    if pending is None or pending.written or IN_TRANSACTION in w.info:
        return
    record = pending.record("OK", response)
    w.insert(AUDIT_TABLE, {c.name: getattr(record, c.name) for c in AUDIT_TABLE.columns})
    w.info[IN_TRANSACTION] = pending


def mark_written(session: Committed) -> None:
    """Database after-commit hook: the audit record in this transaction is stored."""
    pending = session.info.pop(IN_TRANSACTION, None)
    if isinstance(pending, PendingAudit):
        pending.written = True


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ListAuditRecords(self, request, context):  # type: ignore[no-untyped-def]
        size = page_size(request.page_size)
        after = decode_token(request.page_token)
        query = select(AuditRecord).order_by(col(AuditRecord.id).desc()).limit(size + 1)
        if after:
            query = query.where(col(AuditRecord.id) < str(after[0]))
        if request.staff_id:
            query = query.where(AuditRecord.staff_id == request.staff_id)
        if request.method:
            query = query.where(AuditRecord.method == request.method)
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > size
        rows = rows[:size]
        return audit_pb2.ListAuditRecordsResponse(
            audit_records=[
                audit_pb2.AuditRecord(
                    id=r.id,
                    staff_id=r.staff_id,
                    method=r.method,
                    resource=r.resource,
                    request_id=r.request_id,
                    time=ts(r.time),
                    outcome=r.outcome,
                )
                for r in rows
            ],
            next_page_token=encode_token(rows[-1].id) if more else "",
        )

"""AuditService: every service lists its own audit records to supervisors and admins."""

from __future__ import annotations

from branch.common.v1 import audit_pb2, audit_pb2_grpc
from sqlmodel import col, select

from services.common.auth import Access, allow
from services.common.db import Database
from services.common.models import AuditRecord
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts

AUDIT_ACCESS: dict[str, Access] = {"ListAuditRecords": allow("supervisor", "admin")}


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

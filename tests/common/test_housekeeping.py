from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from services.common import housekeeping, migrations
from services.common.clock import FakeClock
from services.common.db import Database
from services.common.ids import new_id
from services.common.models import AuditRecord, OutboxEvent, ProcessedEvent
from services.directory.server import SPEC


async def test_prune_keeps_unsent_recent_and_audit(tmp_path: Path, database_url: str) -> None:
    url = (database_url.replace("{service}", "directory") if database_url
           else f"sqlite+aiosqlite:///{tmp_path}/h.db")
    db = Database(url, service="directory")
    await migrations.upgrade(db, SPEC.migrations)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = now - timedelta(days=40)

    def outbox(sent_at: datetime | None) -> OutboxEvent:
        return OutboxEvent(event_id=new_id(), subject="branch.x.y.z", ce_type="t",
                           ce_subject="s", data_schema="d", data=b"", created_at=old,
                           sent_at=sent_at)

    async with db.transaction() as session:
        session.add_all([outbox(old), outbox(None), outbox(now - timedelta(days=1))])
        session.add_all([ProcessedEvent(consumer="c", event_id="old", handled_at=old),
                         ProcessedEvent(consumer="c", event_id="new", handled_at=now)])
        session.add(AuditRecord(id=new_id(), staff_id="s", method="M", resource="r",
                                request_id="", time=old, outcome="OK"))
    assert await housekeeping.prune(db, FakeClock(now)) == (1, 1)
    async with db.read() as session:
        left = (await session.exec(select(OutboxEvent))).all()
        assert sorted(r.sent_at is None for r in left) == [False, True]
        assert [p.event_id for p in (await session.exec(select(ProcessedEvent))).all()] == ["new"]
        assert len((await session.exec(select(AuditRecord))).all()) == 1
    await db.dispose()

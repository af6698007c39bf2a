"""Pruning of bookkeeping rows that only matter for a while: sent outbox rows (the stream
keeps the events) and handled-event ids older than any redelivery. Audit rows and business
records are never touched."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import col

from services.common.clock import Clock
from services.common.db import Database
from services.common.models import OutboxEvent, ProcessedEvent

SENT_OUTBOX_KEEP = timedelta(days=7)
PROCESSED_KEEP = timedelta(days=30)
INTERVAL_SECONDS = 3600.0


async def prune(db: Database, clock: Clock) -> tuple[int, int]:
    """Delete what is past its keep; returns (outbox rows, processed rows) deleted."""
    now = clock.now()
    async with db.transaction() as session:
        outbox = await session.exec(
            delete(OutboxEvent).where(
                col(OutboxEvent.sent_at).is_not(None),
                col(OutboxEvent.sent_at) < now - SENT_OUTBOX_KEEP,
            )
        )
        processed = await session.exec(
            delete(ProcessedEvent).where(
                col(ProcessedEvent.handled_at) < now - PROCESSED_KEEP
            )
        )
    return int(outbox.rowcount or 0), int(processed.rowcount or 0)


async def run(db: Database, clock: Clock, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await prune(db, clock)
        except Exception:  # the next pass retries; nothing here is urgent
            pass
        try:
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
        except TimeoutError:
            pass

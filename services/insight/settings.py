"""The branch's inspection settings held by insight: how many interactions the scheduled
monthly sample draws per agent or broker (篇5 服务台: 1 to 5 per person, configurable)."""

from __future__ import annotations

from branch.insight.v1 import inspection_pb2
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.clock import Clock
from services.common.db import Database
from services.common.errors import Violations
from services.common.logs import get_logger
from services.common.protos import ts
from services.common.upsert import upsert
from services.insight.models import InspectionSettingsRow

KEY = "branch"
DEFAULT_SAMPLES = 3
MIN_SAMPLES, MAX_SAMPLES = 1, 5
log = get_logger("insight", component="settings")


async def samples_per_person(session: AsyncSession) -> int:
    """The configured per-person sample size, DEFAULT_SAMPLES while never set."""
    row = await session.get(InspectionSettingsRow, KEY)
    return row.samples_per_person if row else DEFAULT_SAMPLES


class InspectionSettings:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self) -> inspection_pb2.InspectionSettings:
        async with self.db.read() as session:
            row = await session.get(InspectionSettingsRow, KEY)
        if row is None:
            return inspection_pb2.InspectionSettings(samples_per_person=DEFAULT_SAMPLES)
        return inspection_pb2.InspectionSettings(
            samples_per_person=row.samples_per_person, update_by=row.updated_by,
            update_time=ts(row.updated_at))

    async def update(self, staff_id: str,
                     msg: inspection_pb2.InspectionSettings) -> inspection_pb2.InspectionSettings:
        """Sets samples_per_person (1 to 5). Raises InvalidArgument naming
        settings.samples_per_person otherwise; nothing is written then."""
        v = Violations()
        v.check(MIN_SAMPLES <= msg.samples_per_person <= MAX_SAMPLES,
                "settings.samples_per_person", "{min_samples} to {max_samples}",
                min_samples=MIN_SAMPLES, max_samples=MAX_SAMPLES)
        v.raise_if_any()
        async with self.db.transaction() as session:
            await upsert(session, InspectionSettingsRow,
                         {"key": KEY, "samples_per_person": msg.samples_per_person,
                          "updated_by": staff_id[:100], "updated_at": self.clock.now()},
                         ["key"])
        log.info("inspection settings changed", samples_per_person=msg.samples_per_person)
        return await self.get()

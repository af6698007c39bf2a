"""The insight service's domain objects, built once per running service."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from branch.insight.v1 import insight_service_pb2 as api
from sqlalchemy import func
from sqlmodel import select

from services.common.calendar import BranchCalendar
from services.common.clock import Clock
from services.common.db import Database
from services.common.models import ProcessedEvent
from services.common.nats_link import NatsLink
from services.common.protos import ts
from services.insight.duty_log import DutyLog
from services.insight.events import ReadModel
from services.insight.inspections import Inspections
from services.insight.performance import Performance
from services.insight.rebuild import CONSUMER, rebuild
from services.insight.reports import Reports
from services.insight.scorecards import Scorecards
from services.insight.settings import InspectionSettings
from services.insight.weekly import WeeklySummaries


@dataclass
class Insight:
    db: Database
    clock: Clock
    scorecards: Scorecards
    inspections: Inspections
    duty_log: DutyLog
    reports: Reports
    performance: Performance
    read_model: ReadModel
    nats: NatsLink
    settings: InspectionSettings
    weekly: WeeklySummaries

    @classmethod
    def build(cls, db: Database, clock: Clock, timezone: str, calendar: BranchCalendar,
              nats: NatsLink) -> Insight:
        tz = ZoneInfo(timezone)
        cards = Scorecards(db, clock)
        return cls(db=db, clock=clock, scorecards=cards,
                   inspections=Inspections(db, clock, tz, cards),
                   duty_log=DutyLog(db, clock, tz), reports=Reports(db, clock, tz, calendar),
                   performance=Performance(db, clock, tz, calendar),
                   read_model=ReadModel(tz), nats=nats,
                   settings=InspectionSettings(db, clock),
                   weekly=WeeklySummaries(db, clock, tz, cards))

    async def status(self) -> api.ReadModelStatus:
        """Events applied by the read model's consumer (its rows in the processed table)."""
        async with self.db.read() as session:
            count, last = (await session.exec(select(
                func.count(), func.max(ProcessedEvent.handled_at)).where(
                ProcessedEvent.consumer == f"{self.db.service}-{CONSUMER}"))).one()
        return api.ReadModelStatus(events_applied=int(count or 0), last_apply_time=ts(last))

    async def rebuild(self) -> api.ReadModelStatus:
        await rebuild(self.db, self.nats)
        return await self.status()

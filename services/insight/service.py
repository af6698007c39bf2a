"""The insight service's domain objects, built once per running service."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services.common.calendar import BranchCalendar
from services.common.clock import Clock
from services.common.db import Database
from services.insight.duty_log import DutyLog
from services.insight.events import ReadModel
from services.insight.inspections import Inspections
from services.insight.reports import Reports
from services.insight.scorecards import Scorecards


@dataclass
class Insight:
    db: Database
    clock: Clock
    scorecards: Scorecards
    inspections: Inspections
    duty_log: DutyLog
    reports: Reports
    read_model: ReadModel

    @classmethod
    def build(cls, db: Database, clock: Clock, timezone: str,
              calendar: BranchCalendar) -> Insight:
        tz = ZoneInfo(timezone)
        cards = Scorecards(db, clock)
        return cls(db=db, clock=clock, scorecards=cards,
                   inspections=Inspections(db, clock, tz, cards),
                   duty_log=DutyLog(db, clock, tz), reports=Reports(db, clock, tz, calendar),
                   read_model=ReadModel(tz, db.is_sqlite))

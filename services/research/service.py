"""The research service's domain objects, built once per running service."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services.common.clock import Clock
from services.common.db import Database
from services.research.ledger import Ledger
from services.research.notes import Notes
from services.research.requests import Requests


@dataclass
class Research:
    db: Database
    clock: Clock
    notes: Notes
    requests: Requests
    ledger: Ledger

    @classmethod
    def build(cls, db: Database, clock: Clock, timezone: str) -> Research:
        return cls(
            db=db, clock=clock, notes=Notes(db, clock, ZoneInfo(timezone)),
            requests=Requests(db, clock), ledger=Ledger(db, clock),
        )

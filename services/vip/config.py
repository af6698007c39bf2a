"""VIP settings: BRANCH_VIP_* environment variables (SLA minutes per urgency, relay window)."""

from __future__ import annotations

from datetime import timedelta

from branch.vip.v1 import advisory_pb2
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import config_error


class VipConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRANCH_VIP_", extra="ignore")

    ack_minutes_normal: float = Field(5, gt=0, description="acknowledge SLA, normal urgency")
    answer_minutes_normal: float = Field(60, gt=0, description="answer SLA, normal urgency")
    ack_minutes_high: float = Field(2, gt=0, description="acknowledge SLA, high urgency")
    answer_minutes_high: float = Field(30, gt=0, description="answer SLA, high urgency")
    relay_due_hours: float = Field(24, gt=0, description="a relay task is due this long after "
                                   "the note reaches the inbox")
    check_seconds: float = Field(15, gt=0, description="how often the SLA timers run")

    def ack_window(self, urgency: int) -> timedelta:
        minutes = (self.ack_minutes_high if urgency == advisory_pb2.URGENCY_HIGH
                   else self.ack_minutes_normal)
        return timedelta(minutes=minutes)

    def answer_window(self, urgency: int) -> timedelta:
        minutes = (self.answer_minutes_high if urgency == advisory_pb2.URGENCY_HIGH
                   else self.answer_minutes_normal)
        return timedelta(minutes=minutes)

    @property
    def relay_window(self) -> timedelta:
        return timedelta(hours=self.relay_due_hours)


def load_config() -> VipConfig:
    try:
        return VipConfig()
    except ValidationError as exc:
        raise config_error(exc, "BRANCH_VIP_") from None
